"""A minimal host for the Celery tests: the worker processes load it with
``celery -A celery_shop worker``. Everything comes from the environment the test
starts them with."""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_amazon_orders import AmazonOrders
from flask_amazon_orders.runners.celery import init_celery

ENV = "CELERY_SHOP_"

app = Flask("celery_shop")
app.config.update(
    SECRET_KEY="test-secret",
    SQLALCHEMY_DATABASE_URI=os.environ[ENV + "DATABASE_URL"],
    SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}}
    if os.environ[ENV + "DATABASE_URL"].startswith("sqlite")
    else {},
    AMAZON_ORDERS_ENDPOINT=os.environ[ENV + "SANDBOX_URL"],
    AMAZON_ORDERS_LWA_URL=os.environ[ENV + "SANDBOX_URL"] + "/auth/o2/token",
    AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
    AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
    AMAZON_ORDERS_RATE_LIMIT_SCALE=float(os.environ[ENV + "TIME_SCALE"]),
    AMAZON_ORDERS_RATE_LIMIT_STORAGE=os.environ[ENV + "REDIS_URL"],
    AMAZON_ORDERS_RETRY_BACKOFF_SECONDS=0.01,
    AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS=0.05,
    AMAZON_ORDERS_FEED_POLL_SECONDS=1,
    AMAZON_ORDERS_SYNC_INTERVAL_SECONDS=float(os.environ.get(ENV + "SYNC_SECONDS", "300")),
    AMAZON_ORDERS_SYNC_PAGE_SIZE=int(os.environ.get(ENV + "PAGE_SIZE", "100")),
)
db = SQLAlchemy(app)
amazon_orders = AmazonOrders(app, db=db)

celery = Celery("celery_shop", broker=os.environ[ENV + "BROKER_URL"])
celery.conf.update(
    task_default_queue=os.environ[ENV + "QUEUE"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
tasks = init_celery(celery, app)
