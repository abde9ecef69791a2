# The exporter image. Build: docker build -t rag-analytics-exporter .
FROM python:3.11-slim-bookworm

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The package links its demo's rules from here (package data).
COPY alerting ./alerting
RUN pip install --no-cache-dir . && rm -rf /src

# Never run as root; the exporter needs no privileges at all.
RUN useradd --system --uid 10001 --no-create-home exporter
USER 10001
WORKDIR /home/exporter
EXPOSE 9841
ENTRYPOINT ["rag-analytics-exporter"]
CMD ["serve"]
