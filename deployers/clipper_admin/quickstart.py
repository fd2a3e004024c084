"""A cluster in one command: `python3 -m clipper_admin.quickstart`.

Starts a cluster with its own nats-server, deploys an example closure as
the app "hello", queries it over HTTP and over NATS, prints the answers,
and stops everything (also on Ctrl-C or an error).
"""
import argparse
import json
import sys
import urllib.error
import urllib.request

from clipper_admin import ClipperConnection, ClipperException, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_admin.local_container_manager import find_unbound_port


def _http(addr, app, body):
    req = urllib.request.Request("http://{}/{}/predict".format(addr, app),
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default=None,
                        help="join this NATS URL instead of starting a private nats-server")
    parser.add_argument("--query-port", type=int, default=1337)
    parser.add_argument("--admin-port", type=int, default=1338)
    parser.add_argument("--keep", action="store_true",
                        help="leave the cluster running until Ctrl-C")
    args = parser.parse_args(argv)

    cm = LocalContainerManager(clipper_query_port=find_unbound_port(args.query_port),
                               clipper_management_port=find_unbound_port(args.admin_port),
                               prometheus_port=find_unbound_port(1390),
                               nats_url=args.nats)
    conn = ClipperConnection(cm)
    try:
        conn.start_clipper()
        print("cluster up: NATS {} prefix {} HTTP {}".format(cm.bus_url, cm.prefix,
                                                            conn.get_query_addr()))
        def total(xs):  # nested, so cloudpickle ships it by value
            return [str(sum(x)) for x in xs]

        python_deployer.create_endpoint(conn, "hello", "doubles", total,
                                        default_output="-1.0", slo_micros=1000000)
        body = {"input": [1.0, 2.0, 3.5]}
        code, text = _http(conn.get_query_addr(), "hello", body)
        print("HTTP  POST /hello/predict {} -> {} {}".format(json.dumps(body), code, text))
        reply = conn.bus.predict("hello", json.dumps(body).encode(), 10000)
        print("NATS  {}.predict.hello {} -> {}".format(cm.prefix, json.dumps(body),
                                                        reply.decode()))
        batch = {"input_batch": [[1.0], [2.0, 2.0]]}
        reply = conn.bus.predict("hello", json.dumps(batch).encode(), 10000)
        print("NATS  {}.predict.hello {} -> {}".format(cm.prefix, json.dumps(batch),
                                                        reply.decode()))
        if args.keep:
            print("Ctrl-C stops the cluster")
            import signal
            signal.pause()
        return 0
    except ClipperException as e:
        print("quickstart failed: {}".format(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        conn.stop_all()


if __name__ == "__main__":
    sys.exit(main())
