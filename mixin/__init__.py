"""The monitoring mixin: alert rules and Grafana dashboards built from one config (mixin.config).

    .venv/bin/python -m mixin          # rewrite alerting/rules/*.yml and grafana/dashboards
    .venv/bin/python -m mixin --check  # exit 1 if a committed file differs (the tests do this too)
"""
