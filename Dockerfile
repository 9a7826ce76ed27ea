# tollguard worker image: `docker build -t tollguard .`, then `docker run tollguard worker --broker kafka://HOST:9092`
# (docker-compose.yml runs it next to a Kafka broker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tollguard ./tollguard
COPY streams ./streams
COPY detectors ./detectors
COPY models ./models
COPY rules ./rules
RUN pip install . && useradd --create-home --uid 10001 tollguard && mkdir -p /data && chown tollguard /data

# The commands read rules/default.yaml from the working directory. The source tree is also put
# first on the path so that data files beside the modules (streams/noc.html, not in the wheel's
# package data) are found; the installed distribution provides the dependencies and `tollguard`.
ENV PYTHONPATH=/app
USER tollguard
EXPOSE 6066
ENTRYPOINT ["tollguard"]
CMD ["worker", "--datadir", "/data", "-l", "info"]
