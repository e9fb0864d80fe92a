"""Kombu (Celery's messaging library) and py-amqp under it, from Debian, against Weir: run by python-clients.test.ts
with the AMQP port as argv[1]. Every check is an assert; one line is printed per step.
"""
import sys

import amqp
from kombu import Connection, Consumer, Exchange, Producer, Queue

port = int(sys.argv[1])

# py-amqp directly: publish without waiting, then get and consume on the same channel.
direct = amqp.Connection(f'127.0.0.1:{port}', userid='guest', password='guest', heartbeat=4)
direct.connect()
ch = direct.channel()
ch.queue_declare('py-amqp', durable=True, auto_delete=False)
for i in range(5):
    ch.basic_publish(amqp.Message(f'hello {i}', content_type='text/plain', application_headers={'n': i}, delivery_mode=2), exchange='', routing_key='py-amqp')
message = ch.basic_get('py-amqp')
assert message is not None and message.body == 'hello 0', message
assert message.properties['application_headers'] == {'n': 0}, message.properties
assert message.delivery_info['message_count'] == 4, message.delivery_info
ch.basic_ack(message.delivery_tag)
bodies = []
ch.basic_qos(0, 2, False)
tag = ch.basic_consume('py-amqp', callback=lambda m: (bodies.append(m.body), m.channel.basic_ack(m.delivery_tag)))
while len(bodies) < 4:
    direct.drain_events(timeout=5)
assert bodies == [f'hello {i}' for i in range(1, 5)], bodies
ch.basic_cancel(tag)
ok = ch.queue_declare('py-amqp', passive=True)
assert ok.message_count == 0 and ok.consumer_count == 0, ok
ch.queue_delete('py-amqp')
direct.close()
print('py-amqp')

# Kombu as Celery uses it: a direct exchange, JSON bodies, task headers, prefetch.
with Connection(f'amqp://guest:guest@127.0.0.1:{port}//', heartbeat=4) as connection:
    exchange = Exchange('py-kombu', type='direct', durable=True)
    queue = Queue('py-kombu-tasks', exchange, routing_key='task', durable=True)
    producer = Producer(connection.channel(), exchange=exchange, serializer='json')
    producer.publish({'task': 'add', 'args': [1, 2]}, routing_key='task', declare=[queue], retry=True,
                     headers={'task': 'add', 'id': 'abc'}, correlation_id='abc', reply_to='replies')
    received = []

    def on_message(body, message):
        received.append((body, message.headers, message.properties.get('correlation_id')))
        message.ack()

    with Consumer(connection, queues=[queue], callbacks=[on_message], accept=['json'], prefetch_count=4):
        connection.drain_events(timeout=5)
    assert received == [({'task': 'add', 'args': [1, 2]}, {'task': 'add', 'id': 'abc'}, 'abc')], received
    simple = connection.SimpleQueue('py-kombu-simple')
    simple.put({'hello': 'world'})
    got = simple.get(block=True, timeout=5)
    assert got.payload == {'hello': 'world'}, got.payload
    got.ack()
    simple.clear()
    simple.close()
    queue(connection.channel()).delete()
print('kombu')
