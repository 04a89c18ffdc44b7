FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
RUN pip install --no-cache-dir .
# compile the Numba kernels into the image: otherwise every container start spends ~17 s on it
RUN python -c "from urbanpulse.analytics import compile_kernels; compile_kernels()"
CMD ["urbanpulse", "run", "--config", "/app/config/urbanpulse.compose.yaml"]
