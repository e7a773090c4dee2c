"""The gemgate benchmark harness: ``python -m bench`` (see ``bench/README.md``).

It builds and starts a compiled mock upstream, starts the gateway in front of it, drives load
with wrk and a streaming client, and writes ``report.json`` and ``report.md``.
"""
