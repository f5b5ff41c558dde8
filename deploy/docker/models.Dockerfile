# syntax=docker/dockerfile:1
# A model release baked into the service image, for deployments that ship models with
# the image instead of mounting a store (deploy/docker/README.md, "Baking models in").
# The build context is a directory holding exactly two things:
#   models/      a model store, as MODEL_PATH expects it (docs/models.md)
#   model-keys/  the public keys that verify it (var/keys/trusted/*.pub; never a private key)
#   docker build -f deploy/docker/models.Dockerfile --build-arg BASE=ml-service:0.1.0 \
#     -t ml-service:0.1.0-models-2024.06 /path/to/bundle

# The service image to build on, by tag or digest: required, so a model release always
# names the code that serves it.
ARG BASE
FROM ${BASE}
# Owned by root, readable by the service's user (uid 10001) and not writable by it, as a
# read-only mount would be. The service verifies every version's hashes and signature at
# load, as it does for a mounted store.
COPY models/ /models/
COPY model-keys/ /etc/ml-service/model-keys/
