"""The ``flask amazon-orders`` command group: thin wrappers over the Python API."""

from __future__ import annotations

import time
from typing import Any

import click
from flask.cli import AppGroup, with_appcontext

from .errors import AmazonOrdersError


class _Commands(AppGroup):
    """The command group; a database without the extension's tables gets advice,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        import sqlalchemy as sa

        try:
            return super().invoke(ctx)
        except ImportError as exc:  # an optional part that is not installed
            if "pip install" not in str(exc):
                raise
            raise click.ClickException(str(exc)) from None
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            text = str(exc.orig)
            if "no such table" not in text and "does not exist" not in text:
                raise
            raise click.ClickException(
                "The database has no amazon_* tables yet: create them with "
                "'flask amazon-orders db upgrade' (or the shop's db.create_all())."
            ) from None


amazon_orders_cli = _Commands("amazon-orders", help="Amazon Seller Central orders.")
store_cli = AppGroup("store", help="Connect and list Amazon stores.")
amazon_orders_cli.add_command(store_cli)
db_cli = AppGroup("db", help="The extension's tables: schema migrations (needs Alembic).")
amazon_orders_cli.add_command(db_cli)


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


@store_cli.command("add")
@click.option("--name", required=True, help="What admins call the store, e.g. 'Amazon DE'.")
@click.option("--seller-id", required=True, help="Amazon seller id (merchant token).")
@click.option(
    "--marketplace",
    required=True,
    help="Marketplace id or country code, e.g. A1PA6795UKMFR9 or DE.",
)
@click.option(
    "--refresh-token",
    prompt=True,
    hide_input=True,
    envvar="AMAZON_ORDERS_REFRESH_TOKEN",
    help="LWA refresh token of the seller's authorization (prompted for if not given; "
    "or set AMAZON_ORDERS_REFRESH_TOKEN).",
)
@click.option("--region", type=click.Choice(["na", "eu", "fe"]), help="Derived if omitted.")
@click.option(
    "--import/--no-import",
    "order_import",
    default=False,
    show_default=True,
    help="The order import toggle: create shop orders from Amazon orders.",
)
@with_appcontext
def store_add(
    name: str,
    seller_id: str,
    marketplace: str,
    refresh_token: str,
    region: str | None,
    order_import: bool,
) -> None:
    """Connect an Amazon seller account in one marketplace."""
    from .services.stores import add_store

    try:
        store = add_store(
            name=name,
            seller_id=seller_id,
            marketplace=marketplace,
            refresh_token=refresh_token,
            region=region,
            order_import_enabled=order_import,
            actor="cli",
        )
    except AmazonOrdersError as exc:
        raise _fail(exc) from None
    click.echo(
        f"Connected store {store.id} {store.name!r} "
        f"(seller {store.seller_id}, marketplace {store.marketplace_id})."
    )


@store_cli.command("list")
@with_appcontext
def store_list() -> None:
    """List the connected stores (never their secrets)."""
    from .services.stores import list_stores

    stores = list_stores()
    if not stores:
        click.echo("No stores yet; add one with 'flask amazon-orders store add'.")
        return
    for store in stores:
        state = "active" if store.active else "inactive"
        last = (
            store.last_sync_succeeded_at.strftime("%Y-%m-%d %H:%M UTC")
            if (store.last_sync_succeeded_at)
            else "never"
        )
        line = (
            f"{store.id:>4}  {store.name:<24} {store.seller_id:<16} {store.marketplace_id:<15} "
            f"{state:<8} import={'on' if store.order_import_enabled else 'off':<3} "
            f"last sync: {last}"
        )
        click.echo(line)
        if store.last_sync_error:
            click.echo(f"      error: {store.last_sync_error}")
        if store.last_feed_error:
            click.echo(f"      sending to Amazon: {store.last_feed_error}")


@store_cli.command("token")
@click.argument("store_ref", metavar="STORE")
@click.option(
    "--refresh-token",
    prompt=True,
    hide_input=True,
    envvar="AMAZON_ORDERS_REFRESH_TOKEN",
    help="The new LWA refresh token (prompted for if not given; or set "
    "AMAZON_ORDERS_REFRESH_TOKEN).",
)
@with_appcontext
def store_token(store_ref: str, refresh_token: str) -> None:
    """Give a store a new refresh token after the seller authorized the app again."""
    from .services.stores import find_store, set_refresh_token

    try:
        store = set_refresh_token(find_store(store_ref), refresh_token, actor="cli")
    except (LookupError, AmazonOrdersError) as exc:
        raise _fail(exc) from None
    click.echo(f"{store.name}: refresh token updated; the next sync uses it.")


@store_cli.command("settings")
@click.argument("store_ref", metavar="STORE")
@click.option(
    "--import/--no-import",
    "order_import",
    default=None,
    help="The order import toggle. Switching it on creates shop orders for the eligible "
    "orders placed since the store was connected; switching it off deletes none.",
)
@click.option("--initial-status", help="The shop status a new imported order starts in.")
@click.option(
    "--number-source",
    type=click.Choice(["host", "amazon"]),
    help="Number imported orders with the shop's own numbers or the Amazon order id.",
)
@with_appcontext
def store_settings(
    store_ref: str,
    order_import: bool | None,
    initial_status: str | None,
    number_source: str | None,
) -> None:
    """Show or change a store's order settings (STORE: id or name)."""
    from .services.importing import set_order_import
    from .services.stores import find_store, update_order_settings

    try:
        store = find_store(store_ref)
        if initial_status is not None or number_source is not None:
            update_order_settings(
                store, initial_status=initial_status, number_source=number_source, actor="cli"
            )
        if order_import is not None:
            result = set_order_import(store, order_import, actor="cli")
            if result.problem:
                click.echo(f"Warning: {result.problem}", err=True)
            elif order_import:
                click.echo(
                    f"Order import on: {len(result.created)} shop orders created, "
                    f"{len(result.blocked)} blocked."
                )
    except (LookupError, AmazonOrdersError) as exc:
        raise _fail(exc) from None
    store = find_store(store.id)
    click.echo(
        f"{store.name}: order import {'on' if store.order_import_enabled else 'off'}, "
        f"new shop orders start as {store.import_initial_status!r}, "
        f"numbers from {store.order_number_source}."
    )


@amazon_orders_cli.command("sync")
@click.option(
    "--store",
    "store_refs",
    multiple=True,
    help="Store id or name (repeatable). Default: every active store.",
)
@with_appcontext
def sync_command(store_refs: tuple[str, ...]) -> None:
    """Import new and changed Amazon orders now."""
    from .jobs.sync import PageProgress, sync_store
    from .services.stores import find_store, list_stores

    try:
        stores = (
            [find_store(ref) for ref in store_refs] if store_refs else list_stores(active_only=True)
        )
    except LookupError as exc:
        raise _fail(exc) from None
    if not stores:
        click.echo("No active stores to sync.")
        return
    from .services.importing import host_problem

    problem = host_problem()
    if problem:
        click.echo(f"Warning: {problem}", err=True)

    def show(page: PageProgress) -> None:
        click.echo(
            f"  page {page.page}: {page.orders} orders, {len(page.created)} new, "
            f"{len(page.updated) + len(page.status_changes)} changed"
        )

    failed = []
    for store in stores:
        click.echo(f"Syncing {store.name} ({store.marketplace_id}) …")
        started = time.monotonic()
        run = sync_store(store.id, trigger="cli", progress=show)
        took = time.monotonic() - started
        if run.status == "succeeded":
            click.echo(
                f"  done in {took:.1f} s: {run.orders_seen} orders seen, "
                f"{run.orders_created} new, {run.orders_updated} changed, "
                f"{run.api_calls} API calls."
            )
        else:
            failed.append(store.name)
            click.echo(f"  failed: {run.error}", err=True)
    if failed:
        raise click.ClickException(f"Sync failed for: {', '.join(failed)}.")


@amazon_orders_cli.command("import")
@click.option(
    "--store",
    "store_refs",
    multiple=True,
    help="Store id or name (repeatable). Default: every store with order import on.",
)
@with_appcontext
def import_command(store_refs: tuple[str, ...]) -> None:
    """Create shop orders for eligible Amazon orders now, retrying blocked ones."""
    from .services.importing import host_problem, import_host_orders
    from .services.stores import find_store, list_stores

    try:
        stores = (
            [find_store(ref) for ref in store_refs]
            if store_refs
            else [s for s in list_stores() if s.order_import_enabled]
        )
    except LookupError as exc:
        raise _fail(exc) from None
    problem = host_problem()
    if problem:
        raise click.ClickException(problem)
    if not stores:
        click.echo("No store has order import on.")
        return
    for store in stores:
        if not store.order_import_enabled:
            click.echo(f"{store.name}: order import is off; nothing to do.")
            continue
        result = import_host_orders(store.id, actor="cli")
        click.echo(
            f"{store.name}: {len(result.created)} shop orders created, "
            f"{len(result.blocked)} blocked, {len(result.completed)} completed"
            + (f", {len(result.failed)} could not be completed." if result.failed else ".")
        )


def _reason_choices() -> list[str]:
    from .services.cancelling import REASONS

    return [reason.value for reason in REASONS]


@amazon_orders_cli.command("cancel")
@click.argument("order_ids", nargs=-1, required=True)
@click.option(
    "--reason",
    required=True,
    type=click.Choice(_reason_choices()),
    help="Amazon's reason for cancellation.",
)
@click.option("--memo", help="A seller memo kept with the cancellation.")
@click.option("--store", "store_ref", help="Store id or name (default: found by order id).")
@with_appcontext
def cancel_command(
    order_ids: tuple[str, ...], reason: str, memo: str | None, store_ref: str | None
) -> None:
    """Cancel unshipped Amazon orders (one feed to Amazon for all of them).

    The orders are cancelled here at once and sent to Amazon by the worker or
    by 'flask amazon-orders feeds'.
    """
    import sqlalchemy as sa

    from .extension import get_extension
    from .models import AmazonOrder
    from .services.cancelling import cancel_orders
    from .services.stores import find_store

    session = get_extension().session
    try:
        if store_ref:
            stores = {find_store(store_ref).id: list(order_ids)}
        else:
            found = dict(
                session.execute(
                    sa.select(AmazonOrder.amazon_order_id, AmazonOrder.store_id).where(
                        AmazonOrder.amazon_order_id.in_(order_ids)
                    )
                ).all()
            )
            unknown = [o for o in order_ids if o not in found]
            if unknown:
                raise LookupError(f"No stored Amazon order {', '.join(unknown)}.")
            stores = {}
            for order_id in order_ids:
                stores.setdefault(found[order_id], []).append(order_id)
        refused = {}
        for store_id, ids in stores.items():
            result = cancel_orders(store_id, ids, reason=reason, memo=memo, actor="cli")
            for amazon_order_id in result.cancelled:
                click.echo(f"{amazon_order_id}: cancelled, queued for Amazon.")
            refused.update(result.refused)
    except (AmazonOrdersError, LookupError) as exc:
        raise _fail(exc) from None
    for order_id, why in refused.items():
        click.echo(f"{order_id}: not cancelled: {why}", err=True)
    if refused:
        raise click.ClickException(f"{len(refused)} of {len(order_ids)} orders not cancelled.")


@amazon_orders_cli.command("feeds")
@click.option(
    "--store",
    "store_refs",
    multiple=True,
    help="Store id or name (repeatable). Default: every store with cancellations, item "
    "adjustments or shipments on their way.",
)
@click.option("--wait", is_flag=True, help="Keep polling until Amazon answered every feed.")
@with_appcontext
def feeds_command(store_refs: tuple[str, ...], wait: bool) -> None:
    """Send queued cancellations, item adjustments and shipment confirmations to
    Amazon and collect Amazon's answers."""
    from .extension import get_extension
    from .jobs.feeds import next_poll_due, process_all_feeds, process_feeds
    from .models import utcnow
    from .services.stores import find_store

    try:
        stores = [find_store(ref) for ref in store_refs]
    except LookupError as exc:
        raise _fail(exc) from None
    while True:
        runs = [process_feeds(s.id) for s in stores] if stores else process_all_feeds()
        for run in runs:
            for feed_id in run.submitted:
                click.echo(f"Feed {feed_id} sent.")
            if run.confirmed or run.rejected or run.requeued:
                click.echo(
                    f"{run.confirmed} confirmed, {run.rejected} rejected, "
                    f"{run.requeued} queued again."
                )
            for error in run.errors:
                click.echo(f"Error: {error}", err=True)
        due = next_poll_due()
        if not wait or due is None:
            if due is not None:
                click.echo(f"Feeds are still being processed; next poll due {due:%H:%M:%S} UTC.")
            break
        get_extension().session.remove()
        time.sleep(max(0.05, (due - utcnow()).total_seconds()))


def _report_notifications(run: Any) -> None:
    for result in run.refreshed:
        click.echo(
            f"  {result.amazon_order_id}: {result.outcome.replace('_', ' ')} ({result.status})"
        )
    for error in run.errors:
        click.echo(f"  {error}", err=True)
    click.echo(
        f"{run.received} notifications: {len(run.refreshed)} orders refreshed, "
        f"{run.repeated} repeated, {run.dropped} dropped, {run.retried} left for later."
    )


@amazon_orders_cli.command("notifications")
@click.option("--once", is_flag=True, help="Handle the notifications waiting now and exit.")
@with_appcontext
def notifications_command(once: bool) -> None:
    """Read Amazon's order notifications from the SQS queue and refresh those orders.

    Runs until Ctrl-C, or with --once (for cron) handles what is waiting and exits.
    The queue is AMAZON_ORDERS_SQS_QUEUE_URL.
    """
    from .extension import get_extension
    from .jobs.notifications import notification_queue, poll_notifications

    ext = get_extension()
    try:
        queue = notification_queue()
    except AmazonOrdersError as exc:
        raise _fail(exc) from None
    if once:
        try:
            run = poll_notifications()
        except AmazonOrdersError as exc:
            raise _fail(exc) from None
        _report_notifications(run)
        if run.retried:
            raise click.ClickException(
                f"{run.retried} notifications could not be handled now; they come again."
            )
        return
    click.echo(f"Reading notifications from {queue.queue_url}; Ctrl-C stops.")
    try:
        while True:
            try:
                run = poll_notifications()
            except AmazonOrdersError as exc:
                click.echo(f"Error: {exc}", err=True)
                time.sleep(max(1.0, ext.settings.sqs_wait_seconds))
                continue
            finally:
                ext.session.remove()
            if run.received:
                _report_notifications(run)
    except KeyboardInterrupt:
        click.echo("Stopped.")


@amazon_orders_cli.command("worker")
@click.option("--interval", type=float, help="Seconds between rounds (default: config).")
@click.option(
    "--once",
    is_flag=True,
    help="Run one round, print each store's sync result and exit (for cron); "
    "exit status 1 if a store's sync failed.",
)
@with_appcontext
def worker_command(interval: float | None, once: bool) -> None:
    """Run the embedded sync worker in the foreground until Ctrl-C."""
    import sqlalchemy as sa
    from flask import current_app

    from .extension import get_extension
    from .models import Store
    from .runners.embedded import EmbeddedWorker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    worker = EmbeddedWorker(
        app, interval=interval or get_extension().settings.sync_interval_seconds
    )
    if once:
        results = worker.run_once()
        session = get_extension().session
        names: dict[int, str] = dict(session.execute(sa.select(Store.id, Store.name)).all())
        session.rollback()  # end the read: nothing else waits on it
        for store_id, status, error in results:
            line = f"{names.get(store_id, store_id)}: {status}"
            click.echo(line + (f" - {error}" if error else ""))
        if any(status == "failed" for _, status, _ in results):
            raise click.exceptions.Exit(1)
        return
    click.echo(f"Syncing every {worker.interval:g} s; Ctrl-C stops.")
    worker.start()
    try:
        while worker.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("Stopping …")
    finally:
        worker.stop()


@amazon_orders_cli.command("purge")
@with_appcontext
def purge_command() -> None:
    """Delete buyer data of orders closed longer than the retention period."""
    from .extension import get_extension
    from .jobs.purge import purge_all

    days = get_extension().settings.buyer_data_retention_days
    runs = purge_all()
    purged = sum(run.purged for run in runs)
    click.echo(
        f"Buyer data of {purged} orders deleted "
        f"(closed more than {days} days ago, {len(runs)} stores checked)."
    )


@amazon_orders_cli.command("rotate-keys")
@with_appcontext
def rotate_keys_command() -> None:
    """Re-encrypt refresh tokens and buyer data under the first configured key."""
    from .services.keys import rotate_keys

    try:
        result = rotate_keys()
    except AmazonOrdersError as exc:
        raise _fail(exc) from None
    click.echo(
        f"Re-encrypted {result.refresh_tokens} refresh tokens and {result.buyer_data} "
        f"buyer data under key {result.key_id}; {result.current} were current already."
    )
    if result.unreadable:
        for table, row_id in result.unreadable[:20]:
            click.echo(f"Unreadable with the configured keys: {table} id {row_id}", err=True)
        raise click.ClickException(
            f"{len(result.unreadable)} values could not be decrypted and were left as they "
            "are; keep the old keys until they are fixed."
        )
    click.echo("Every value is under the first key now; the other keys can be removed.")


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Bring the amazon_* tables to REVISION (default: the newest)."""
    from . import migrations
    from .extension import get_extension

    engine = get_extension().db.engine
    try:
        migrations.upgrade(engine, revision)
    except migrations.UnversionedTablesError as exc:
        raise _fail(exc) from None
    click.echo(f"The amazon_* tables are at {migrations.current(engine)}.")


@db_cli.command("stamp")
@click.argument("revision", default="heads")
@with_appcontext
def db_stamp(revision: str) -> None:
    """Record that the amazon_* tables are at REVISION (made by db.create_all())."""
    from . import migrations
    from .extension import get_extension

    engine = get_extension().db.engine
    migrations.stamp(engine, revision)
    click.echo(f"The amazon_* tables are recorded at {migrations.current(engine)}.")


@db_cli.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Take the amazon_* tables back to REVISION (what later ones added is dropped)."""
    from . import migrations
    from .extension import get_extension

    engine = get_extension().db.engine
    migrations.downgrade(engine, revision)
    click.echo(f"The amazon_* tables are at {migrations.current(engine)}.")


@db_cli.command("current")
@with_appcontext
def db_current() -> None:
    """Show the revision of the amazon_* tables."""
    from . import migrations
    from .extension import get_extension

    click.echo(migrations.current(get_extension().db.engine) or "none (no migration applied)")


@amazon_orders_cli.command("generate-key")
def generate_key() -> None:
    """Print a new random key for AMAZON_ORDERS_ENCRYPTION_KEYS."""
    from .crypto import Encryptor

    click.echo(Encryptor.generate_key())
