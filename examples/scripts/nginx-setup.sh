#!/bin/sh
# Runs inside the guest during the build: turn nginx on at boot and name
# the site in its default server block.
set -eu
systemctl enable nginx
sed -i "s/server_name _;/server_name ${SITE_NAME:-_};/" \
  /etc/nginx/sites-available/default
