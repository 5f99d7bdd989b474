FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producers producers
COPY streams streams
COPY sinks sinks
COPY vigil vigil
RUN pip install --no-cache-dir .
ENTRYPOINT ["vigil"]
CMD ["worker"]
