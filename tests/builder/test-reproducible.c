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

/* Two ext4 file systems with the same files, made a second apart (other
 * inode times, random generations and a deleted file's leftovers), are
 * byte-identical once normalised, and still clean. */
static void make_fs(const char *img, const char *dir) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "rm -f %s && truncate -s 40M %s && "
           "mke2fs -q -F -t ext4 -U 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0 "
           "-E offset=1048576,hash_seed=1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0 "
           "-d %s/tree %s 32M && "
           "debugfs -w -R 'rm /scratch' '%s?offset=1048576' >/dev/null 2>&1",
           img, img, dir, img, img);
  assert_int_equal(run(cmd), 0);
}

static void test_normalise(void **state) {
  (void)state;
  if (run("command -v mke2fs && command -v debugfs && command -v tune2fs && "
          "command -v e2fsck && command -v dumpe2fs") != 0)
    skip();
  char dir[] = "/tmp/vab-repro-tree-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[4096], a[128], b[128];
  snprintf(cmd, sizeof cmd,
           "cd %s && mkdir -p tree/etc tree/usr/bin && echo hello >tree/etc/motd "
           "&& head -c 300000 /dev/urandom >tree/usr/bin/tool && "
           "echo temp >tree/scratch", dir);
  assert_int_equal(run(cmd), 0);
  snprintf(a, sizeof a, "%s/a.img", dir);
  snprintf(b, sizeof b, "%s/b.img", dir);
  make_fs(a, dir);
  sleep(1);
  snprintf(cmd, sizeof cmd, "touch %s/tree/etc/motd", dir);
  assert_int_equal(run(cmd), 0);
  make_fs(b, dir);
  snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
  assert_int_not_equal(run(cmd), 0);  /* they differ before */

  struct vab_ctx *ctx = vab_ctx_new();
  assert_non_null(ctx);
  struct vab_layout layout;
  memset(&layout, 0, sizeof layout);
  snprintf(layout.root_fstype, sizeof layout.root_fstype, "ext4");
  layout.root_offset = 1048576;
  assert_int_equal(vab_repro_normalise(ctx, a, "raw", &layout, "seed",
                                       1700000000), 0);
  assert_int_equal(vab_repro_normalise(ctx, b, "raw", &layout, "seed",
                                       1700000000), 0);
  vab_ctx_free(ctx);
  assert_int_equal(run(cmd), 0);      /* and are the same bytes after */
  snprintf(cmd, sizeof cmd, "e2fsck -fn '%s?offset=1048576' >/dev/null 2>&1",
           a);
  assert_int_equal(run(cmd), 0);
  snprintf(cmd, sizeof cmd,
           "debugfs -R 'stat /etc/motd' '%s?offset=1048576' 2>/dev/null | "
           "grep -q 'ctime: 0x6553f100:00000000'", a);
  assert_int_equal(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(run(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_uuid),
      cmocka_unit_test(test_ext4_hash_seed),
      cmocka_unit_test(test_normalise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
