"""JetStream's wire protocol, both sides: the Orchestrator's gRPC ``Decode`` stream and the HTTP server's
``/v1/generate`` (:mod:`rlscale.jetstream.protocol`), from ``jetstream.proto``, written from upstream's documented
fields. The emulator serves it; ``rlscale loadtest`` speaks it to a real server or to the emulator. Nothing of
rlscale is imported here."""
