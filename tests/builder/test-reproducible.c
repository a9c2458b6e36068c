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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_uuid),
      cmocka_unit_test(test_ext4_hash_seed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
