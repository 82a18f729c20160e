#!/usr/bin/env bash
# One-shot setup of the compose stack's Prefect side (docker/compose.yaml, service
# prefect-init): work pools, the `gpu` concurrency limit, the S3 result-storage block on
# MinIO, and the deployments (CPU ones on t2g-local, those that train on t2g-gpu).
# Idempotent: every step creates or updates.
set -euo pipefail
cd /opt/t2g

# The locked template: a flow run's job variables cannot change the command or the
# environment its process gets (docs/service.md, "Access model").
prefect work-pool create t2g-local --type process --overwrite --base-job-template deployments/work-pools/process-locked.json
prefect work-pool create t2g-gpu --type process --overwrite --base-job-template deployments/work-pools/process-locked.json
prefect global-concurrency-limit create gpu --limit "${T2G_GPU_SLOTS:-1}" \
  || prefect global-concurrency-limit update gpu --limit "${T2G_GPU_SLOTS:-1}"

# Result storage: the block PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK names, with the MinIO
# endpoint and keys taken from this container's environment (never written to a file).
python - <<'PY'
import os

from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.client_parameters import AwsClientParameters

creds = AwsCredentials(
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    aws_client_parameters=AwsClientParameters(endpoint_url=os.environ["AWS_ENDPOINT_URL"]),
)
S3Bucket(bucket_name="t2g-results", credentials=creds).save("t2g-results", overwrite=True)
PY

# Every deployment, stores on MinIO; then the ones that train or evaluate move to the GPU pool.
prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml
prefect --no-prompt deploy --prefect-file deployments/prefect.yaml --name t2g-data/regenerate \
  --param 'store=s3://t2g/regen/{date}'
for name in t2g-pipeline/full t2g-train-only/from-data t2g-evaluate-only/benchmark; do
  prefect --no-prompt deploy --prefect-file deployments/prefect.yaml --name "$name" --pool t2g-gpu \
    --param 'store=s3://t2g/runs'
done
