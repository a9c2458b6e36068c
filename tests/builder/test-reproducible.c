/* builder/reproducible.c: derived ids and the ext4 superblock edit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vab/error.h"
#include "common/crc32c.h"
#include "builder/reproducible.h"

static void test_crc32c(void **state) {
  (void)state;
  /* The check value of CRC-32C (RFC 3720, B.4). */
  assert_int_equal(crc32c("123456789", 9), 0xe3069283u);
  uint8_t zeros[32] = {0};
  assert_int_equal(crc32c(zeros, sizeof zeros), 0x8a9136aau);
}

static void test_uuid(void **state) {
  (void)state;
  char a[37], b[37], c[37];
  vab_repro_uuid("seed", "root file system", a);
  vab_repro_uuid("seed", "root file system", b);
  vab_repro_uuid("seed", "gpt disk", c);
  assert_string_equal(a, b);
  assert_string_not_equal(a, c);
  vab_repro_uuid("other seed", "root file system", b);
  assert_string_not_equal(a, b);
  assert_int_equal(strlen(a), 36);
  assert_int_equal(a[8], '-');
  assert_int_equal(a[13], '-');
  assert_int_equal(a[14], '4');                 /* version 4 */
  assert_non_null(strchr("89ab", a[19]));       /* RFC 4122 variant */
  assert_int_equal(strspn(a, "0123456789abcdef-"), 36);
  assert_int_equal(vab_repro_u32("s", "x"), vab_repro_u32("s", "x"));
  assert_int_not_equal(vab_repro_u32("s", "x"), vab_repro_u32("s", "y"));
}

static int run(const char *cmd) {
  int r = system(cmd);
  return r == -1 ? -1 : WEXITSTATUS(r);
}

/* The edited superblock is one e2fsck and dumpe2fs accept, with the seed:
 * a wrong checksum would fail the check. */
static void test_ext4_hash_seed(void **state) {
  (void)state;
  if (run("command -v mke2fs >/dev/null && command -v e2fsck >/dev/null") != 0)
    skip();
  char img[] = "/tmp/vab-repro-XXXXXX";
  int fd = mkstemp(img);
  assert_true(fd >= 0);
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "truncate -s 32M %s && mke2fs -q -F -t ext4 -O metadata_csum %s",
           img, img);
  assert_int_equal(run(cmd), 0);
  uint8_t sb[1024];
  FILE *f = fopen(img, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, 1024, SEEK_SET), 0);
  assert_int_equal(fread(sb, 1, sizeof sb, f), sizeof sb);
  const char *seed = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0";
  assert_int_equal(vab_repro_ext4_sb_hash_seed(sb, "not a uuid"), -1);
  assert_int_equal(vab_repro_ext4_sb_hash_seed(sb, seed), 0);
  assert_int_equal(fseek(f, 1024, SEEK_SET), 0);
  assert_int_equal(fwrite(sb, 1, sizeof sb, f), sizeof sb);
  assert_int_equal(fclose(f), 0);
  snprintf(cmd, sizeof cmd, "e2fsck -fn %s >/dev/null 2>&1", img);
  assert_int_equal(run(cmd), 0);
  snprintf(cmd, sizeof cmd,
           "dumpe2fs -h %s 2>/dev/null | grep -q 'Directory Hash Seed: *%s'",
           img, seed);
  assert_int_equal(run(cmd), 0);
  unlink(img);
  uint8_t junk[1024] = {0};
  assert_int_equal(vab_repro_ext4_sb_hash_seed(junk, seed), -1);
}

/* What dumpe2fs -h says becomes mke2fs's parameters; runtime state
 * ("needs_recovery") is not a feature to make. */
static void test_ext4_params(void **state) {
  (void)state;
  static const char *const lines[] = {
      "Filesystem volume name:   root",
      "Filesystem UUID:          0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
      "Filesystem features:      has_journal ext_attr needs_recovery extent "
      "64bit flex_bg metadata_csum",
      "Inode count:              131072",
      "Block count:              524032",
      "Reserved block count:     26201",
      "Block size:               4096",
      "Flex block group size:    16",
      "Inode size:\t          256",
      "Directory Hash Seed:      1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
      "Total journal blocks:     16384",
      NULL};
  struct vab_ext4_params p;
  memset(&p, 0, sizeof p);
  assert_int_equal(vab_repro_ext4_params_check(&p), -1);
  for (size_t i = 0; lines[i] != NULL; i++)
    vab_repro_ext4_param_line(&p, lines[i]);
  assert_int_equal(vab_repro_ext4_params_check(&p), 0);
  assert_string_equal(p.features,
                      "none,has_journal,ext_attr,extent,64bit,flex_bg,"
                      "metadata_csum");
  assert_string_equal(p.label, "root");
  assert_string_equal(p.uuid, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0");
  assert_string_equal(p.hash_seed, "1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0");
  assert_int_equal(p.block_count, 524032);
  assert_int_equal(p.inode_count, 131072);
  assert_int_equal(p.reserved_blocks, 26201);
  assert_int_equal(p.block_size, 4096);
  assert_int_equal(p.inode_size, 256);
  assert_int_equal(p.flex_bg, 16);
  assert_int_equal(p.journal_blocks, 16384);
  vab_repro_ext4_param_line(&p, "Filesystem volume name:   <none>");
  assert_string_equal(p.label, "");
  /* A block size that is no power of two, a seed that is no UUID. */
  vab_repro_ext4_param_line(&p, "Block size:               3000");
  assert_int_equal(vab_repro_ext4_params_check(&p), -1);
  vab_repro_ext4_param_line(&p, "Block size:               1024");
  assert_int_equal(vab_repro_ext4_params_check(&p), 0);
  vab_repro_ext4_param_line(&p, "Directory Hash Seed:      zz");
  assert_int_equal(vab_repro_ext4_params_check(&p), -1);
}

/* Two ext4 file systems with the same files but another history (made a
 * second apart, files written in another order, a deleted file's data
 * left in free blocks and its inode in the table) are byte-identical once
 * made anew from their tars, clean, with times at the epoch, the hard
 * link, symbolic link, xattr and owners kept, the deleted file's bytes
 * gone, and the tar and the unpacked tree removed. */
static void make_fs(const char *img, const char *dir, const char *order,
                    const char *written) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd %s && rm -rf tree %s && mkdir -p tree/etc tree/usr/bin && "
           "for f in %s; do echo $f >tree/usr/bin/$f; done && "
           "echo hello >tree/etc/motd && ln tree/etc/motd tree/etc/motd.link "
           "&& ln -s motd tree/etc/motd.sym && chown 1000:1001 tree/etc/motd "
           "&& setfattr -n user.vab -v 1 tree/usr/bin/b && "
           /* A file capability (as ping's), where root can set one. */
           "{ [ \"$(id -u)\" != 0 ] || setfattr -n security.capability "
           "-v 0x0100000200200000000000000000000000000000 tree/usr/bin/a; } && "
           "echo VAB-DELETED-MARKER >tree/scratch && "
           "truncate -s 40M %s && "
           "mke2fs -q -F -t ext4 -U 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0 "
           "-E offset=1048576,hash_seed=1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0 "
           "-d tree %s 32M && "
           "debugfs -w -R 'rm /scratch' '%s?offset=1048576' >/dev/null 2>&1 && "
           /* Files the builder wrote in another order: other inode numbers
            * and blocks, which an in-place edit keeps. */
           "echo x >tree/etc/x && echo y >tree/etc/y && "
           "{ echo 'cd /etc'; for f in %s; do echo \"write tree/etc/$f $f\"; "
           "done; } | "
           "debugfs -w -f - '%s?offset=1048576' >/dev/null 2>&1 && "
           "rm tree/scratch && tar -C tree --numeric-owner --xattrs -cf %s.tar . && "
           "rm -rf tree",
           dir, img, order, img, img, img, written, img, img);
  assert_int_equal(run(cmd), 0);
}

static void test_normalise(void **state) {
  (void)state;
  if (run("command -v mke2fs && command -v debugfs && command -v e2fsck && "
          "command -v dumpe2fs && command -v setfattr && command -v tar") != 0 ||
      (geteuid() != 0 && run("command -v fakeroot") != 0))
    skip();
  char dir[] = "/tmp/vab-repro-tree-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[4096], a[128], b[128], tar[160];
  snprintf(a, sizeof a, "%s/a.img", dir);
  snprintf(b, sizeof b, "%s/b.img", dir);
  make_fs(a, dir, "a b c", "x y");
  sleep(1);
  make_fs(b, dir, "c b a", "y x");
  snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
  assert_int_not_equal(run(cmd), 0);  /* they differ before */

  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_layout layout;
  memset(&layout, 0, sizeof layout);
  snprintf(layout.root_fstype, sizeof layout.root_fstype, "ext4");
  layout.root_offset = 1048576;
  snprintf(tar, sizeof tar, "%s.tar", a);
  if (vab_repro_normalise(ctx, a, "raw", &layout, tar, 1700000000) != 0)
    fail_msg("%s", vab_last_error(ctx)->message);
  assert_int_equal(access(tar, F_OK), -1);
  snprintf(tar, sizeof tar, "%s.tar", b);
  if (vab_repro_normalise(ctx, b, "raw", &layout, tar, 1700000000) != 0)
    fail_msg("%s", vab_last_error(ctx)->message);
  /* A missing tar is an error that names it, and leaves nothing behind. */
  assert_int_equal(vab_repro_normalise(ctx, b, "raw", &layout, tar,
                                       1700000000), -1);
  assert_non_null(strstr(vab_last_error(ctx)->message, tar));
  vab_ctx_free(ctx);
  assert_int_equal(run(cmd), 0);      /* and are the same bytes after */
  snprintf(cmd, sizeof cmd, "e2fsck -fn '%s?offset=1048576' >/dev/null 2>&1",
           a);
  assert_int_equal(run(cmd), 0);
  /* debugfs request, what its output must hold (grep -E) */
  static const char *const checks[][2] = {
      {"stat /etc/motd", "ctime: 0x6553f100:00000000"},
      {"stat /etc/motd", " atime: 0x6553f100:00000000"},
      {"stat /etc/motd", "crtime: 0x6553f100:00000000"},
      {"stat /etc/motd", "Links: 2"},
      {"stat /etc/motd", "User: +1000 +Group: +1001"},
      {"stat /etc/motd.sym", "Fast link dest: \"motd\""},
      {"ea_list /usr/bin/b", "user.vab \\(1\\) = \"1\""},
      {"cat /usr/bin/c", "^c$"},
      {"cat /etc/y", "^y$"},
      {"stats", "Filesystem created: +Tue Nov 14 22:13:20 2023"},
      {"stats", "Mount count: +0$"},
  };
  snprintf(cmd, sizeof cmd,
           "debugfs -R 'ea_list /usr/bin/a' '%s?offset=1048576' 2>/dev/null | "
           "grep -q 'security.capability (20) = 01 00 00 02 00 20'", a);
  if (geteuid() == 0 && run(cmd) != 0)
    fail_msg("the file capability of /usr/bin/a is lost");
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    snprintf(cmd, sizeof cmd,
             "TZ=UTC debugfs -R '%s' '%s?offset=1048576' 2>/dev/null | "
             "grep -Eq '%s'", checks[i][0], a, checks[i][1]);
    if (run(cmd) != 0)
      fail_msg("debugfs '%s' of the new file system has no '%s'",
               checks[i][0], checks[i][1]);
  }
  snprintf(cmd, sizeof cmd, "grep -c VAB-DELETED-MARKER %s", a);
  assert_int_not_equal(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "[ -z \"$(ls %s | grep -v '^[ab].img$')\" ]", dir);
  assert_int_equal(run(cmd), 0);      /* no tree, tar or script left */
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(run(cmd), 0);
}

/* A tree that does not fit (mke2fs -d fails after the tar is unpacked)
 * and a cancelled build: -1, the error says which tool, and neither the
 * unpacked tree, the tar nor a script is left. */
static void test_normalise_fails_clean(void **state) {
  (void)state;
  if (run("command -v mke2fs && command -v debugfs && command -v e2fsck && "
          "command -v dumpe2fs && command -v tar") != 0 ||
      (geteuid() != 0 && run("command -v fakeroot") != 0))
    skip();
  char dir[] = "/tmp/vab-repro-fail-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[2048], img[128], tar[160];
  snprintf(img, sizeof img, "%s/a.img", dir);
  snprintf(tar, sizeof tar, "%s.tar", img);
  snprintf(cmd, sizeof cmd,
           "cd %s && mkdir tree && head -c 20000000 /dev/urandom >tree/big && "
           "tar -C tree -cf %s . && rm -rf tree && truncate -s 20M %s && "
           "mke2fs -q -F -t ext4 -E offset=1048576 %s 16M",
           dir, tar, img, img);
  assert_int_equal(run(cmd), 0);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_layout layout;
  memset(&layout, 0, sizeof layout);
  snprintf(layout.root_fstype, sizeof layout.root_fstype, "ext4");
  layout.root_offset = 1048576;
  assert_int_equal(vab_repro_normalise(ctx, img, "raw", &layout, tar,
                                       1700000000), -1);
  assert_int_equal(vab_last_error(ctx)->code, VAB_E_SUBPROCESS);
  assert_non_null(strstr(vab_last_error(ctx)->message, "mke2fs failed"));
  snprintf(cmd, sizeof cmd, "[ \"$(ls %s)\" = a.img ]", dir);
  assert_int_equal(run(cmd), 0);

  snprintf(cmd, sizeof cmd, "cd %s && mkdir tree && echo x >tree/x && "
           "tar -C tree -cf %s . && rm -rf tree", dir, tar);
  assert_int_equal(run(cmd), 0);
  vab_ctx_cancel(ctx);
  assert_int_equal(vab_repro_normalise(ctx, img, "raw", &layout, tar,
                                       1700000000), -1);
  assert_int_equal(vab_last_error(ctx)->code, VAB_E_CANCELLED);
  snprintf(cmd, sizeof cmd, "[ \"$(ls %s)\" = \"$(printf 'a.img\\na.img.tar')\" ]",
           dir);
  assert_int_equal(run(cmd), 0);       /* the caller's tar, nothing else */
  vab_ctx_free(ctx);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(run(cmd), 0);
}

/* minfo's lines become mkfs.vfat's parameters. */
static void test_vfat_params(void **state) {
  (void)state;
  static const char *const lines[] = {
      "sector size: 512 bytes",
      "cluster size: 4 sectors",
      "reserved (boot) sectors: 4",
      "fats: 2",
      "max available root directory slots: 512",
      "small size: 0 sectors",
      "sectors per track: 32",
      "heads: 8",
      "hidden sectors: 4096",
      "big size: 409600 sectors",
      "physical drive id: 0x80",
      "serial number: 0BADCAFE",
      "disk label=\"ESP        \"",
      "disk type=\"FAT16   \"",
      NULL};
  struct vab_vfat_params p;
  memset(&p, 0, sizeof p);
  assert_int_equal(vab_repro_vfat_params_check(&p), -1);
  for (size_t i = 0; lines[i] != NULL; i++)
    vab_repro_vfat_param_line(&p, lines[i]);
  assert_int_equal(vab_repro_vfat_params_check(&p), 0);
  assert_int_equal(p.sector_size, 512);
  assert_int_equal(p.cluster_sectors, 4);
  assert_int_equal(p.reserved, 4);
  assert_int_equal(p.fats, 2);
  assert_int_equal(p.root_entries, 512);
  assert_int_equal(p.hidden, 4096);
  assert_int_equal(p.big_size, 409600);
  assert_int_equal(p.drive, 0x80);
  assert_int_equal(p.serial, 0x0badcafe);
  assert_int_equal(p.fat_bits, 16);
  assert_string_equal(p.label, "ESP");
  vab_repro_vfat_param_line(&p, "disk label=\"NO NAME    \"");
  assert_string_equal(p.label, "");
  vab_repro_vfat_param_line(&p, "cluster size: 3 sectors");
  assert_int_equal(vab_repro_vfat_params_check(&p), -1);
}

/* Two ESPs with the same files written at other times (the builder VM's
 * clock) and in another order are byte-identical once made anew: same
 * serial number, files and contents, times at the epoch. */
static void make_esp(const char *img, const char *dir, const char *order) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd %s && rm -rf esp %s && mkdir -p esp/EFI/debian esp/EFI/BOOT && "
           "echo cfg >esp/EFI/debian/grub.cfg && echo boot >esp/EFI/BOOT/x.efi "
           "&& truncate -s 80M %s && "
           "mkfs.vfat -i 0badcafe -n ESP --offset=2048 %s 65536 >/dev/null && "
           "export MTOOLS_SKIP_CHECK=1 && "
           "for d in %s; do mcopy -s -i %s@@1048576 esp/EFI/$d ::/EFI/ 2>/dev/null "
           "|| { mmd -i %s@@1048576 ::/EFI && "
           "mcopy -s -i %s@@1048576 esp/EFI/$d ::/EFI/; }; done && "
           "tar -C esp -cf %s.tar . && rm -rf esp",
           dir, img, img, img, order, img, img, img, img);
  assert_int_equal(run(cmd), 0);
}

static void test_normalise_esp(void **state) {
  (void)state;
  if (run("command -v mkfs.vfat && command -v mcopy && command -v minfo && "
          "command -v mdir && command -v tar") != 0)
    skip();
  char dir[] = "/tmp/vab-repro-esp-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[4096], a[128], b[128], tar[160];
  snprintf(a, sizeof a, "%s/a.img", dir);
  snprintf(b, sizeof b, "%s/b.img", dir);
  make_esp(a, dir, "debian BOOT");
  sleep(2);  /* FAT times have 2 s steps */
  make_esp(b, dir, "BOOT debian");
  snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
  assert_int_not_equal(run(cmd), 0);
  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  snprintf(tar, sizeof tar, "%s.tar", a);
  if (vab_repro_normalise_esp(ctx, a, 1048576, tar, 1700000000) != 0)
    fail_msg("%s", vab_last_error(ctx)->message);
  snprintf(tar, sizeof tar, "%s.tar", b);
  if (vab_repro_normalise_esp(ctx, b, 1048576, tar, 1700000000) != 0)
    fail_msg("%s", vab_last_error(ctx)->message);
  vab_ctx_free(ctx);
  assert_int_equal(run(cmd), 0);
  static const char *const checks[][2] = {
      {"minfo", "serial number: 0BADCAFE"},
      {"minfo", "disk label=\"ESP"},
      {"mdir ::/EFI/debian", "grub +cfg +4 2023-11-14 +22:13"},
      {"mdir ::/EFI", "BOOT +<DIR> +2023-11-14 +22:13"},
      {"mtype ::/EFI/BOOT/x.efi", "^boot$"},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    snprintf(cmd, sizeof cmd,
             "MTOOLS_SKIP_CHECK=1 %s -i %s@@1048576 %s 2>/dev/null | "
             "grep -Eq '%s'", checks[i][0], a,
             strcmp(checks[i][0], "minfo") == 0 ? "::" : "", checks[i][1]);
    if (run(cmd) != 0)
      fail_msg("'%s' of the new ESP has no '%s'", checks[i][0], checks[i][1]);
  }
  snprintf(cmd, sizeof cmd, "[ \"$(ls %s)\" = \"$(printf 'a.img\\nb.img')\" ]",
           dir);
  assert_int_equal(run(cmd), 0);      /* no tree or tar left */
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(run(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_uuid),
      cmocka_unit_test(test_ext4_hash_seed),
      cmocka_unit_test(test_ext4_params),
      cmocka_unit_test(test_normalise),
      cmocka_unit_test(test_normalise_fails_clean),
      cmocka_unit_test(test_vfat_params),
      cmocka_unit_test(test_normalise_esp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
