#!/bin/bash
# Make the small disk the boot test's tests boot, and print its path.
#
# The disk is raw, MBR, one FAT32 partition holding the host's kernel and a
# busybox initramfs.  SeaBIOS boots it through syslinux, OVMF through
# systemd-boot (EFI/BOOT/BOOTX64.EFI), both with console=ttyS0.  The guest:
#   - serves /index.html ("vab boot test page") with busybox httpd on port 80,
#   - sends "VAB-BANNER ready" to every client of port 2222 (like an SSH
#     banner), while port 2323 has nothing listening,
#   - prints VAB-TEST-READY on the serial console when all that runs.
# It is built without root (mtools, syslinux's image installer) and cached
# in $VAB_TEST_CACHE (default /var/tmp/vab-test-cache) under a key made of
# this script and the kernel, so later runs reuse it.
#
# Needs: a kernel in /boot with its modules, busybox, syslinux, mtools,
# dosfstools, fdisk (sfdisk), cpio, and systemd-boot-efi for UEFI.
# Exits 77 (skip) when something is missing.
set -euo pipefail

skip() { echo "test disk: $*" >&2; exit 77; }

kver=
for k in /boot/vmlinuz-*; do
  v=${k#/boot/vmlinuz-}
  if [ -r "$k" ] && [ -d "/lib/modules/$v" ]; then kver=$v; fi
done
[ -n "$kver" ] || skip "no readable kernel in /boot with modules"
for tool in busybox syslinux mcopy mmd mkfs.fat sfdisk cpio gzip; do
  command -v "$tool" >/dev/null || skip "$tool not found"
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$mbr" ] || skip "$mbr not found"
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi

cache=${VAB_TEST_CACHE:-/var/tmp/vab-test-cache}
key=$( (cat "$0"; echo "$kver"; [ -r "$sdboot" ] && echo efi) | sha256sum | cut -c1-16)
disk="$cache/boottest-$key.raw"
if [ -f "$disk" ]; then
  echo "$disk"
  exit 0
fi
mkdir -p "$cache"

work=$(mktemp -d "$cache/mkdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The initramfs: busybox and the C library it needs, the virtio network
# modules in load order, and /init.
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules,www}
cp /bin/busybox "$root/bin/busybox"
for lib in $(ldd /bin/busybox | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
for m in virtio_pci virtio_net; do
  modprobe -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | while read -r ko; do
    name=$(basename "$ko")
    grep -qx "$name" "$root/modules.order" 2>/dev/null && continue
    case "$ko" in
      *.xz) xz -dc "$ko" > "$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
      *.zst) zstd -qdc "$ko" > "$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
      *) cp "$ko" "$root/lib/modules/$name" ;;
    esac
    echo "$name" >> "$root/modules.order"
  done
[ -s "$root/modules.order" ] || skip "virtio modules of $kver not found"

cat > "$root/bin/banner" <<'BANNER'
#!/bin/sh
echo "VAB-BANNER ready"
sleep 2
BANNER
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 1; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo '<h1>vab boot test page</h1>' > /www/index.html
httpd -p 80 -h /www
nc -ll -p 2222 -e /bin/banner &
echo "VAB-TEST-READY on $(cat /proc/cmdline)"
while true; do sleep 3600; done
INIT
chmod 755 "$root/init" "$root/bin/banner"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.img"

# syslinux and systemd-boot configuration.
cat > "$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img console=ttyS0 quiet vab_firmware=bios
CFG
printf 'default vab.conf\ntimeout 0\n' > "$work/loader.conf"
cat > "$work/vab.conf" <<'ENTRY'
title vab boot test
linux /vmlinuz
initrd /initrd.img
options console=ttyS0 quiet vab_firmware=uefi
ENTRY

# 64 MiB disk, one FAT32 partition from 1 MiB, active for BIOS booting.
img="$work/disk.raw"
truncate -s 64M "$img"
printf 'label: dos\nstart=2048, type=c, bootable\n' | sfdisk -q "$img"
offset=$((2048 * 512))
sectors=$(( (64 * 1024 * 1024 - offset) / 512 ))
mkfs.fat -F 32 --offset 2048 -n VABTEST "$img" $((sectors / 2)) >/dev/null
part="$img@@$offset"
mcopy -i "$part" "/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$part" "$work/initrd.img" ::/initrd.img
mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux.cfg
syslinux --offset "$offset" --install "$img"
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none
if [ -r "$sdboot" ]; then
  mmd -i "$part" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
  mcopy -i "$part" "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$part" "$work/loader.conf" ::/loader/loader.conf
  mcopy -i "$part" "$work/vab.conf" ::/loader/entries/vab.conf
fi
mv "$img" "$disk"
echo "$disk"
