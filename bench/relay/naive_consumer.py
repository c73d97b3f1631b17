#!/usr/bin/env python3
"""The naive relay that bench/relay compares Rubra with: pika consumer -> requests POST to
the (same) fake Viber -> one SQLite insert and commit per message -> ack. One process, one
message at a time, as such a script is usually written.

Usage: naive_consumer.py AMQP_URL QUEUE VIBER_BASE_URL SQLITE_PATH
"""
import json
import sqlite3
import sys

import pika
import requests

amqp_url, queue, viber, db_path = sys.argv[1:5]
db = sqlite3.connect(db_path)
db.execute("PRAGMA journal_mode=WAL")
db.execute(
    "CREATE TABLE IF NOT EXISTS log (id TEXT, status INTEGER, at REAL DEFAULT (julianday('now')))"
)
http = requests.Session()


def on_message(ch, method, _props, body):
    msg = json.loads(body)
    text = msg.get("text") or json.dumps(msg.get("payload"), separators=(",", ":"))
    resp = http.post(
        viber.rstrip("/") + "/pa/send_message",
        headers={"X-Viber-Auth-Token": "t"},
        json={
            "receiver": msg.get("receiver", "bot"),
            "min_api_version": 1,
            "sender": {"name": "naive"},
            "type": "text",
            "text": text,
            "tracking_data": msg.get("id"),
        },
        timeout=10,
    )
    db.execute("INSERT INTO log (id, status) VALUES (?, ?)", (msg.get("id"), resp.status_code))
    db.commit()
    ch.basic_ack(delivery_tag=method.delivery_tag)


conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
channel = conn.channel()
channel.queue_declare(queue=queue, durable=True)
channel.basic_qos(prefetch_count=256)
channel.basic_consume(queue=queue, on_message_callback=on_message)
print("naive consumer ready", flush=True)
channel.start_consuming()
