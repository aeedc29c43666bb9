# The hub and the simulators in one image; the compose stack runs it with different commands.

# The hot modules compiled with mypyc (hub/native.py), in a stage that has a C compiler.
FROM python:3.11-bookworm AS native
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY hub ./hub
COPY scripts/build_native.py ./scripts/
RUN pip install --no-cache-dir -c constraints.txt . mypy setuptools \
    && python scripts/build_native.py --out /app/build/native

FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY hub ./hub
COPY simulators ./simulators
COPY deploy ./deploy
RUN pip install --no-cache-dir -c constraints.txt .
# Used only while it matches the installed sources (hub/native.py checks each one's hash).
COPY --from=native /app/build/native /app/build/native
ENV HUB_NATIVE_DIR=/app/build/native
ENV HUB_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["python", "-m", "hub", "run"]
