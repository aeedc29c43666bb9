# The hub and the simulators in one image; the compose stack runs it with different commands.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY hub ./hub
COPY simulators ./simulators
COPY deploy ./deploy
RUN pip install --no-cache-dir -c constraints.txt .
ENV HUB_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["python", "-m", "hub", "run"]
