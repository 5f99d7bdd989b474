# The wheel is built where there is a C compiler (the full image), so the worker's
# core is compiled by mypyc (setup.py); the image that runs it is the slim one.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY producers producers
COPY streams streams
COPY sinks sinks
COPY vigil vigil
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
ENTRYPOINT ["vigil"]
CMD ["worker"]
