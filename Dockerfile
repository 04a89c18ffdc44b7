FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
RUN pip install --no-cache-dir .
CMD ["urbanpulse", "run", "--config", "/app/config/urbanpulse.compose.yaml"]
