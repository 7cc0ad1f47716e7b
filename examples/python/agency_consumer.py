#!/usr/bin/env python3
"""A minimal agency system in Python (confluent-kafka): reads the documents Ventanilla routes
to one agency, drops duplicates by `ce_id` (the document id), and answers each on the agency's
own ack topic. Start from here to connect an agency's real back office.

    pip install confluent-kafka
    python3 examples/python/agency_consumer.py --brokers 127.0.0.1:9092 --agency br-customs
"""
import argparse
import json
import sys

from confluent_kafka import Consumer, Producer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--agency", required=True, help="e.g. br-customs")
    p.add_argument("--prefix", default="ventanilla.", help="the gateway's topic prefix")
    p.add_argument("--status", default="received", help="the answer to send")
    p.add_argument("--count", type=int, default=0, help="stop after this many documents (0: never)")
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this many idle seconds")
    args = p.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": f"{args.agency}-python-example",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    producer = Producer({"bootstrap.servers": args.brokers})
    consumer.subscribe([f"{args.prefix}agency.{args.agency}"])
    seen = set()
    try:
        while not args.count or len(seen) < args.count:
            msg = consumer.poll(args.timeout)
            if msg is None:
                print("no document arrived in time", file=sys.stderr)
                return 1
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            if "ce_documentid" in headers:
                # A notice about a document (withdrawn, or the trader's answer to a query): read, not answered.
                print(f"{headers['ce_type']} about {headers['ce_documentid']}: {msg.value().decode()}")
                consumer.commit(msg)
                continue
            document_id = headers["ce_id"]
            if document_id in seen:
                consumer.commit(msg)
                continue  # a duplicate after a gateway crash: already answered
            document = json.loads(msg.value())
            print(f"{headers['ce_type']} {document_id} for consignment {headers['ce_subject']} "
                  f"({len(json.dumps(document))} bytes)")
            answer = {"documentId": document_id, "agency": args.agency, "status": args.status,
                      "reason": "answered by the Python example"}
            producer.produce(f"{args.prefix}acks.{args.agency}", key=msg.key(), value=json.dumps(answer))
            producer.flush(30)
            consumer.commit(msg)  # only once the answer is out
            seen.add(document_id)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
