# ratio-zoom service image: one image, three roles (worker, api, migrate) chosen by the command.
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 ratio
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY contract ./contract
COPY zoom_api ./zoom_api
COPY storage ./storage
COPY connections ./connections
COPY http_api ./http_api
COPY emulators ./emulators
COPY ratio_zoom ./ratio_zoom
COPY temporal_codec ./temporal_codec
RUN pip install .
USER ratio
EXPOSE 8080 9464
ENTRYPOINT ["ratio-zoom"]
CMD ["worker"]
