"""Runs moto's server handling one request at a time.

moto's own `moto_server` serves requests on parallel threads without
serialising them, so two concurrent conditional writes can both pass their
condition. DynamoDB applies conditional writes and transactions atomically;
casebridge's exactly-once guarantees rest on that. Serving one request at a
time (HTTP/1.0, a connection per request) gives the tests the same guarantee.

moto's TransactWriteItems deep-copies every table it touches (items and
stream records) so it can roll back: its cost grows with the table, to
seconds per transaction after a few thousand items, which makes a load run
impossible. Since requests are served one at a time, the same all-or-nothing
result is had by checking every condition first and writing only when all
hold (`checked_transact_write_items`); only the touched items are kept for
the rare rollback of a write that fails validation half-way.

Likewise, moto answers a Query on a table's own key by listing and sorting
every item of the table; `partition_query` hands it only the queried
partition, which is what DynamoDB reads.

Usage: python moto_serial.py HOST PORT
"""

import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


class SerialRequestHandler(MotoRequestHandler):
    # HTTP/1.0: every request closes its connection, so one slow client never
    # holds the single worker.
    protocol_version = "HTTP/1.0"


def checked_transact_write_items(self, transact_items):
    import copy

    from moto.dynamodb import models

    if len(transact_items) > 100:
        raise models.TooManyTransactionsException()
    seen = set()
    errors = []
    plan = []
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise models.TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        original_item = None
        try:
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            if op_type == "Put":
                table = self.get_table(table_name)
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in seen:
                raise models.MultipleTransactionsException()
            seen.add(unique)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = models.get_filter_expression(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise models.ConditionalCheckFailed(item=original_item)
            plan.append((op_type, op, table_name, key, copy.deepcopy(current)))
            errors.append((None, None, None))
        except (models.MultipleTransactionsException, models.MockValidationException):
            raise
        except models.ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - reported per item, as moto does
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        raise models.TransactionCanceledException(errors)
    applied = []
    try:
        for op_type, op, table_name, key, before in plan:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(
                    table_name, key, update_expression=op["UpdateExpression"], expression_attribute_names=names, expression_attribute_values=values
                )
            applied.append((table_name, key, before))
    except Exception:
        for table_name, key, before in reversed(applied):
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


def partition_query(original):
    def query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None or not self.range_key_attr:
            return original(self, hash_key, *args, **kwargs)
        partition = list(self.items.get(hash_key, {}).values())
        # The instance attribute shadows the method for this one call; requests are served one at a time.
        self.all_items = lambda: partition
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    return query


def main() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    DynamoDBBackend.transact_write_items = checked_transact_write_items
    Table.query = partition_query(Table.query)

    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=SerialRequestHandler)


if __name__ == "__main__":
    main()
