"""Sample application for stackops.platform: an HTTP API and a Redis-queue worker (stdlib + psycopg2 + redis)."""
