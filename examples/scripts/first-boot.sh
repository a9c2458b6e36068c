#!/bin/sh
# Runs once, at the appliance's first boot: record when it first came up.
set -eu
date -u +%Y-%m-%dT%H:%M:%SZ > /var/lib/vab-first-boot
