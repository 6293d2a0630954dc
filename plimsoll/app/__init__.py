"""The wallet web app: a read API over the SDK (server.py) and the page (web/, bundled
into static/ by `make setup`)."""
