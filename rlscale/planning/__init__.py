"""What plans by simulating: the cheapest static count, the clairvoyant oracle's schedule, a pod's capacity.

Both search by running the scenario itself (``rlscale.simulation.run_scenario``), so they sit above the
simulator; the policies that carry their answers out (``rlscale.policies.static.StaticPolicy``,
``rlscale.policies.oracle.ClairvoyantOracle``) sit below it, among the policies the simulator runs.

* ``static`` — the smallest fixed count whose runs on every seed meet the SLO attainment (``search_static``).
* ``oracle`` — the oracle's capacity probes, plans and search (``plan_oracle``) and its settings (``OracleConfig``).
* ``capacity`` — the guide's sizing: per batch size, the highest rate within the SLOs and the HPA targets there.
"""
