#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are installed (Debian packages) and running on 127.0.0.1, as the
# PostgreSQL + Redis test pass needs. Safe to run again; does nothing when both already answer.
set -euo pipefail

need_root() { [ "$(id -u)" = 0 ] || { echo "services.sh: run as root to install or start services" >&2; exit 1; }; }
apt_updated=0
apt_install() {
  need_root
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: installing PostgreSQL"
  apt_install postgresql
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  need_root
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # Test machines only: trust local TCP connections, as the CI machine is set up.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  echo "services: starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "services: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

# Redis
if ! command -v redis-server >/dev/null 2>&1; then
  echo "services: installing Redis"
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  need_root
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "services: Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
echo "services: PostgreSQL and Redis are up"
