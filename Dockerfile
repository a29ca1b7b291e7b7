# kt-pipelines component image: the pinned Python 3.10 / TFX 1.16 / TF 2.16.2 stack with the
# CUDA 12.3 + cuDNN 8.9 user-space libraries TF 2.16.2 was built against, plus this project.
#
# Why not tensorflow/tensorflow:2.16.2-gpu: it ships Python 3.11, and TFX 1.16 needs
# Python >=3.9,<3.11. Why not nvidia/cuda:12.3.x-cudnn9-*: TF 2.16 is built for cuDNN 8.9,
# not 9, and tensorflow[and-cuda] brings its own CUDA/cuDNN wheels anyway, so a CUDA base
# would only duplicate several GB of libraries. The GPU *driver* (libcuda) is never in an
# image: the node provides it (NVIDIA container toolkit, or GKE's mount under
# /usr/local/nvidia). So the base is the official CPython 3.10 on Debian 12 (glibc 2.36,
# the platform requirements.lock was resolved and tested on), and the CUDA libraries are the
# exact wheels that tensorflow==2.16.2's `and-cuda` extra pins (cuDNN 8.9.7.29, cuBLAS
# 12.3.4.1, ...). Pin the base by digest in your registry for fully reproducible builds.
#
# No ENTRYPOINT: TFX's KubeflowV2DagRunner runs this image with the command
# `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ...`, so
# `python` on PATH must be the venv's Python 3.10 holding the stack, and nothing may wrap it.
#
# Build: docker build -t REGISTRY/kt-pipelines:0.1.0 .
ARG PYTHON_VERSION=3.10.16

# --- build stage: the full Debian image has gcc/g++ and Python headers, needed because a
# few pinned packages (pyfarmhash, crcmod) ship only as sdists and compile at install time.
FROM python:${PYTHON_VERSION}-bookworm AS build

# Must equal the tensorflow pin in requirements.lock (tests/test_manifests.py checks it).
ARG TF_VERSION=2.16.2
ARG PIP_VERSION=24.2

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.lock /tmp/requirements.lock
# The lock pins everything, tensorflow included; the `and-cuda` extra adds only the nvidia-*
# CUDA wheels, each pinned with == in tensorflow's own metadata.
RUN pip install --no-cache-dir --disable-pip-version-check "pip==${PIP_VERSION}" \
 && pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/requirements.lock "tensorflow[and-cuda]==${TF_VERSION}" \
 && pip check

COPY pyproject.toml /src/
COPY kt_core /src/kt_core
COPY components /src/components
COPY pipelines /src/pipelines
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
 && python -c "import tfx.v1, keras_tuner, kt_core.search" \
 && python -c "import importlib.util as u; assert u.find_spec('tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor')" \
 && ln -s "$(python -c 'import os, nvidia.cuda_nvcc as m; print(os.path.join(os.path.dirname(m.__file__), "bin", "ptxas"))')" \
        /opt/venv/bin/ptxas \
 && test -x /opt/venv/bin/ptxas

# --- runtime stage: same CPython build (so the venv's /usr/local/bin/python link holds),
# without compilers.
FROM python:${PYTHON_VERSION}-slim-bookworm

LABEL org.opencontainers.image.title="kt-pipelines" \
      org.opencontainers.image.description="keras-tuner hyperparameter search as TFX / Kubeflow pipeline components" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /opt/venv /opt/venv

# - TF 2.16's pip-installed CUDA libraries live in site-packages/nvidia/*/lib, which TF does
#   not find on its own (tensorflow/tensorflow#63362); register them with the dynamic loader.
# - A fixed non-root user (UID/GID 1000, so `runAsNonRoot: true` can verify it). Its writable
#   directories are also group 0 writable, for platforms that run an arbitrary UID in group 0.
# - The KFP v2 launcher stages artifacts under /gcs, /minio and /s3 (kubeflow/pipelines#5673);
#   pre-create them so it can do so as the non-root user.
RUN find /opt/venv/lib/python3.10/site-packages/nvidia -mindepth 2 -maxdepth 2 -type d -name lib \
        > /etc/ld.so.conf.d/zz-pip-nvidia.conf \
 && ldconfig \
 && groupadd --gid 1000 kt \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/kt --shell /bin/bash kt \
 && mkdir -p /workspace /gcs /minio /s3 \
 && chown 1000:0 /home/kt /workspace /gcs /minio /s3 \
 && chmod 0775 /home/kt /workspace /gcs /minio /s3

# /usr/local/nvidia/{bin,lib64}: where GKE mounts the node's driver (nvidia-smi, libcuda).
ENV PATH=/opt/venv/bin:/usr/local/nvidia/bin:$PATH \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    HOME=/home/kt

WORKDIR /workspace
USER 1000:1000
