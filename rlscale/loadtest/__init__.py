"""Load testing a JetStream server (``rlscale loadtest``): a scenario's traffic sent open-loop by Locust, what
comes back recorded in the simulator's layouts, so a real run and a simulated one compare column by column.

Reading guide:

* ``plan`` — the requests to send (the scenario's own draw), their rate segments, the stated safety limits;
* ``engine`` — Locust in its own process (gevent): one greenlet per request at its time, HTTP ``/v1/generate``
  or the gRPC ``Decode`` stream, ``requests.csv`` and the scraped ``metrics.csv``;
* ``runner`` — the command's side: write the folder, run the engine, pass Ctrl-C on, read back;
* ``results`` — a folder read back: requests, gauges, ``timeline.csv``, ``summary.json``, load points;
* ``fit`` — ``rlscale calibrate --from``: the deployment's step times and step-model parameters from a folder.
"""
