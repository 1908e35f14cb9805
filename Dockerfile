# CPU-only image of the leopard re-identification service.
#
#   docker build -t leopard-reid .
#   docker run --rm -v reid-data:/data leopard-reid reid keys add admin --role admin   # prints a key, once
#   docker run -p 8000:8000 -v reid-data:/data [-e REID_ALLOWED_HOSTS=reid.example.org] leopard-reid
#
# The catalogue, image copies and indexes live in the /data volume; the API is at
# http://localhost:8000/docs (sign in at /signin with a key). The container listens on all its
# interfaces, so `reid serve` refuses to start until a key exists (or REID_API_TOKEN is set):
# the default command never opens an unauthenticated port. Requests must name a host it
# answers to: loopback names, plus REID_ALLOWED_HOSTS (the name or IP:port people type).
# docs/security.md: roles, what is private, running on a network.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from PyTorch's CPU index: the default index would bring a multi-GB CUDA
# build. pip then counts 2.13.0+cpu as satisfying the project's torch==2.13.0 pin.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 torchvision==0.28.0

COPY pyproject.toml README.md ./
COPY reid/ reid/
COPY service/ service/
COPY models/ models/
COPY scripts/check_cpu_only.py scripts/

# A plain install: the shipped checkpoints travel as the `reid_models` package
# (reid/models_dir.py; tests/test_packaging.py installs a wheel and identifies with it).
RUN pip install . \
    && python scripts/check_cpu_only.py

# Run as an unprivileged user; only the data volume is writable for it (a bind-mounted
# host folder must be writable by uid 10001).
RUN useradd --create-home --uid 10001 --user-group reid \
    && mkdir -p /data \
    && chown reid:reid /data
VOLUME ["/data"]

ENV REID_DATA_DIR=/data
USER reid
EXPOSE 8000

# 200 whenever the process answers; the first start exports the ONNX model (~10 s).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1

CMD ["reid", "serve", "--host", "0.0.0.0", "--port", "8000"]
