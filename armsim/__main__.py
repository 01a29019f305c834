"""``python -m armsim --port 8780``: serve the stand-in in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse

from armsim.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="armsim", description="Local Azure Resource Manager stand-in.")
    parser.add_argument("--port", type=int, default=8780, help="port to listen on (default 8780)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--page-size", type=int, default=100, help="items per page of list responses")
    parser.add_argument("--throttling", action="store_true", help="enable ARM-like token-bucket throttling")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--gateway", action="store_true", help="also serve the imported APIs on a local "
                        "gateway (its own port; the APIM service's gatewayUrl points at it)")
    parser.add_argument("--gateway-port", type=int, default=0,
                        help="the gateway's port (default: a free one)")
    args = parser.parse_args(argv)
    serve_forever(args.port, host=args.host, page_size=args.page_size, throttling=args.throttling,
                  latency=args.latency, gateway=args.gateway, gateway_port=args.gateway_port)


if __name__ == "__main__":
    main()
