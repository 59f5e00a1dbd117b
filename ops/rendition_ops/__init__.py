"""Rendition's operations tools, one module per tool, each run as `python3 -m rendition_ops.<tool>`
by its wrapper in scripts/ (which builds the binary and brings the services up).

# Layout
- `common`: the pinned venv (ops/requirements.txt), a private moto server, the TCP proxy that
  cuts and stops connections, worker processes, synthetic images, S3 / MinIO event shapes.
- `chaos` (scripts/chaos.sh): the queue workers under SIGKILLs, a broker cut and an S3 outage.
- `verify`: what a fault run's bucket must hold, found through the sources' manifests, and the
  byte comparison with a clean `rendition run --local` (used by `chaos`).
- `soak` (scripts/soak.sh): one worker for thousands of renders; RSS, fds and threads per job.
- `e2e_bench` (scripts/e2e-bench.sh): the worker end to end against the raw render rate.
- `lambda_bench` (scripts/lambda-bench.sh): the Lambda's miss latency, warm and cold.
"""
