"""The quickstart's shop: the smallest Flask app with Flask-Amazon-Orders.

Run it against the bundled Amazon sandbox as docs/quickstart.rst says; for
Amazon, set the LWA credentials and remove the two sandbox lines.
"""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_amazon_orders import AmazonOrders

SANDBOX = os.environ.get("SANDBOX_URL", "http://127.0.0.1:8765")

app = Flask(__name__)
app.config.update(
    SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///shop.sqlite"),
    SECRET_KEY=os.environ.get("SECRET_KEY", "change-me"),
    AMAZON_ORDERS_LWA_CLIENT_ID=os.environ.get("LWA_CLIENT_ID", "sandbox-client-id"),
    AMAZON_ORDERS_LWA_CLIENT_SECRET=os.environ.get("LWA_CLIENT_SECRET", "sandbox-client-secret"),
    # The bundled sandbox instead of Amazon:
    AMAZON_ORDERS_ENDPOINT=SANDBOX,
    AMAZON_ORDERS_LWA_URL=SANDBOX + "/auth/o2/token",
)
db = SQLAlchemy(app)
amazon_orders = AmazonOrders(app, db=db)


@amazon_orders.access_handler
def may_use_amazon_pages(permission, store):
    # "view" to look, "manage" to change settings, sync, cancel …
    return True  # for the quickstart only: let your shop's admins in, nobody else


with app.app_context():
    db.create_all()
