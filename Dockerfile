# syntax=docker/dockerfile:1
# The image of every process of the bus: `docker run <image> stream | materialize | api | gateway | migrate ...`
# runs `satubus <command>`. Configuration comes from SATUBUS_* variables (satubus/settings.py).
#
# The base is pinned to an exact patch release of the Python that pyproject.toml requires (a test keeps the two in
# step). glibc, not Alpine: rocksdict and confluent-kafka ship manylinux wheels only. Pin it by digest as well
# (python:3.11.14-slim-bookworm@sha256:...) once the digest has been looked up in the registry.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/satubus
WORKDIR /src
# The dependencies of pyproject.toml at the versions of requirements.lock, in a layer of their own: it is rebuilt
# only when one of the two files changes, not with every change of the code.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > dependencies.txt \
    && /opt/satubus/bin/pip install --constraint requirements.lock --requirement dependencies.txt
COPY . .
# A wheel, not an editable install: satubus/{schemas,streams,...} are links to the top-level folders, and the wheel
# holds their files under satubus/ (README: "The code is one Python package").
RUN /opt/satubus/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/satubus/bin/pip install --no-deps --constraint requirements.lock /wheels/satubus-*.whl \
    && /opt/satubus/bin/satubus --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 satubus \
    && useradd --system --uid 10001 --gid satubus --home-dir /var/lib/satubus --no-create-home \
        --shell /usr/sbin/nologin satubus \
    && mkdir -p /var/lib/satubus \
    && chown satubus:satubus /var/lib/satubus
COPY --from=build /opt/satubus /opt/satubus
# Listen on every interface of the container (the defaults are loopback, for the local stack); state (faust's
# tables) and each process's secrets under /var/lib/satubus.
ENV PATH=/opt/satubus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SATUBUS_STATE_DIR=/var/lib/satubus \
    SATUBUS_METRICS_HOST=0.0.0.0 \
    SATUBUS_API_HOST=0.0.0.0 \
    SATUBUS_GATEWAY_HOST=0.0.0.0
WORKDIR /var/lib/satubus
USER 10001:10001
# Readiness (satubus/health.py) of the process on HEALTHCHECK_PORT: its metrics port (stream 19102, materialize
# 19103) or its HTTP port (api 19120, gateway 19110). Not a SATUBUS_* name: every process refuses unknown ones.
# Unset (one-shot commands such as migrate), the check passes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; p = os.environ.get('HEALTHCHECK_PORT'); sys.exit(0 if not p else u.urlopen(f'http://127.0.0.1:{p}/health', timeout=4).status != 200)"]
ENTRYPOINT ["satubus"]
CMD ["--help"]
