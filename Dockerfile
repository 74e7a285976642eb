# ratio-zoom service image: one image, three roles (worker, api, migrate) chosen by the command.
# Built from the package, not from a folder list: stage 1 builds the wheel from the whole build context
# (.dockerignore keeps tests, bench and local state out), stage 2 installs that wheel and nothing else:
# no dev extra (no Temporal CLI, no SMTP sink), no compiler, no source tree.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 ratio
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
WORKDIR /home/ratio
USER 10001
EXPOSE 8080 9464
ENTRYPOINT ["ratio-zoom"]
CMD ["worker"]
