"""Python's pika (Debian python3-pika) against Weir: run by python-clients.test.ts with the AMQP port as argv[1].

Every check is an assert; the script prints one line per step so a failure shows how far it got.
"""
import datetime
import decimal
import sys

import pika

port = int(sys.argv[1])
connection = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port, heartbeat=2))

# Confirmed publishing with every property and typed headers; mandatory to nowhere comes back.
ch = connection.channel()
ch.confirm_delivery()
ch.queue_declare('py-pq', durable=True, arguments={'x-max-priority': 5})
ch.exchange_declare('py-topic', 'topic', durable=True)
ch.queue_bind('py-pq', 'py-topic', 'a.*')
headers = {
    'int': 42, 'negative': -7, 'bool': True, 'text': 'str', 'nested': {'x': 1, 'list': [1, 'two']},
    'list': [1, 2], 'time': datetime.datetime(2024, 1, 2, 3, 4, 5), 'decimal': decimal.Decimal('3.14'),
    'big': 2 ** 40, 'bytes': b'\x00\x01', 'void': None,
}
props = pika.BasicProperties(
    content_type='application/json', content_encoding='utf-8', headers=headers, delivery_mode=2, priority=3,
    correlation_id='cid', reply_to='rt', expiration='60000', message_id='mid', timestamp=1700000000, type='t',
    user_id='guest', app_id='app')
for i in range(10):
    ch.basic_publish('py-topic', 'a.b', f'm{i}'.encode(), props, mandatory=True)
try:
    ch.basic_publish('py-topic', 'nowhere', b'unroutable', mandatory=True)
    raise AssertionError('a mandatory publish to nowhere was not returned')
except pika.exceptions.UnroutableError as error:
    assert len(error.messages) == 1
print('confirmed publishing')

method, got, body = ch.basic_get('py-pq')
assert body == b'm0' and method.message_count == 9 and not method.redelivered, (body, method)
for name in ('content_type', 'content_encoding', 'delivery_mode', 'priority', 'correlation_id', 'reply_to',
             'expiration', 'message_id', 'timestamp', 'type', 'user_id', 'app_id'):
    assert getattr(got, name) == getattr(props, name), (name, getattr(got, name))
assert got.headers == headers, got.headers
ch.basic_nack(method.delivery_tag, requeue=True)
print('properties and headers round-trip')

# Prefetch, multiple acks, the redelivered flag.
ch.basic_qos(prefetch_count=3)
received = []


def on_message(channel, method, properties, body):
    received.append((body, method.redelivered))
    if len(received) % 2 == 0 or len(received) == 10:
        channel.basic_ack(method.delivery_tag, multiple=True)
    if len(received) == 10:
        channel.stop_consuming()


tag = ch.basic_consume('py-pq', on_message)
ch.start_consuming()
ch.basic_cancel(tag)
assert sorted(body for body, _ in received) == [f'm{i}'.encode() for i in range(10)], received
assert [body for body, redelivered in received if redelivered] == [b'm0'], received
print('consumed with prefetch')

# Without confirms: a get, a count, a purge right after publishing on the same channel see the publishes.
plain = connection.channel()
plain.basic_publish('', 'py-pq', b'right away', pika.BasicProperties(delivery_mode=2))
assert plain.basic_get('py-pq', auto_ack=True)[2] == b'right away'
for i in range(3):
    plain.basic_publish('', 'py-pq', b'x')
assert plain.queue_declare('py-pq', passive=True).method.message_count == 3
assert plain.queue_purge('py-pq').method.message_count == 3
assert plain.basic_get('py-pq')[0] is None
print('publishes seen in order')

# Transactions.
tx = connection.channel()
tx.tx_select()
tx.basic_publish('', 'py-pq', b'rolled back')
tx.tx_rollback()
tx.basic_publish('', 'py-pq', b'committed')
tx.tx_commit()
assert tx.basic_get('py-pq', auto_ack=True)[2] == b'committed'
assert tx.basic_get('py-pq')[0] is None
print('transactions')

# Errors come back as channel exceptions with RabbitMQ's codes.
try:
    ch.queue_declare('py-pq', durable=False)
    raise AssertionError('an inequivalent redeclare was accepted')
except pika.exceptions.ChannelClosedByBroker as error:
    assert error.reply_code == 406 and 'inequivalent arg' in error.reply_text, error
try:
    connection.channel().queue_declare('py-missing', passive=True)
    raise AssertionError('a passive declare of a missing queue was accepted')
except pika.exceptions.ChannelClosedByBroker as error:
    assert error.reply_code == 404, error
print('channel exceptions')

# Heartbeats every 2 s: an idle connection stays open.
connection.sleep(5)  # processes I/O meanwhile, so pika sends its heartbeats
last = connection.channel()
last.queue_delete('py-pq')
last.exchange_delete('py-topic')
connection.close()
print('heartbeats and close')
