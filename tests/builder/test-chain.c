/* builder/chain: the state record of disk entries, the step cache's
 * vab_cache_has, and the qcow2 chain of checkpoints (with qemu-img, when
 * installed): relative backing names that resolve both in the cache and
 * linked out into a work folder, hole-keeping copies, and flattening. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "builder/cache.h"
#include "builder/chain.h"
#include "vab/vab.h"

static const char key_a[] =
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char key_b[] =
  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static struct vab_chain_state sample(void) {
  struct vab_chain_state s;
  memset(&s, 0, sizeof s);
  memcpy(s.base, key_a, 65);
  memcpy(s.base_sha256, key_b, 65);
  snprintf(s.layout.root_device, sizeof s.layout.root_device, "/dev/sda3");
  snprintf(s.layout.root_fstype, sizeof s.layout.root_fstype, "ext4");
  snprintf(s.layout.root_uuid, sizeof s.layout.root_uuid,
           "0b1c7e2a-1111-2222-3333-444455556666");
  snprintf(s.guest_os, sizeof s.guest_os, "debian12");
  s.layout.root_offset = 269484032;
  return s;
}

static void test_state_round_trip(void **state) {
  (void)state;
  struct vab_chain_state in = sample(), out;
  struct buf text = BUF_INIT;
  assert_int_equal(vab_chain_state_format(&in, &text), 0);
  assert_non_null(strstr(text.data, "esp-device -\n"));
  char err[128] = "";
  assert_int_equal(vab_chain_state_parse(text.data, text.len, &out, err,
                                         sizeof err), 0);
  assert_string_equal(out.base, key_a);
  assert_string_equal(out.base_sha256, key_b);
  assert_string_equal(out.layout.root_device, "/dev/sda3");
  assert_string_equal(out.layout.esp_device, "");
  assert_string_equal(out.guest_os, "debian12");
  /* A resumed build normalises the root at its offset (reproducible.h). */
  assert_int_equal(out.layout.root_offset, 269484032);
  buf_release(&text);

  /* A layout entry: no base. */
  in.base[0] = in.base_sha256[0] = '\0';
  assert_int_equal(vab_chain_state_format(&in, &text), 0);
  assert_int_equal(vab_chain_state_parse(text.data, text.len, &out, err,
                                         sizeof err), 0);
  assert_string_equal(out.base, "");
  buf_release(&text);

  /* What cannot be read back is refused. */
  snprintf(in.guest_os, sizeof in.guest_os, "two words");
  assert_int_equal(vab_chain_state_format(&in, &text), -1);
  buf_release(&text);
}

static void expect_bad(const char *text, const char *why) {
  struct vab_chain_state out;
  char err[128] = "";
  assert_int_equal(vab_chain_state_parse(text, strlen(text), &out, err,
                                         sizeof err), -1);
  if (strstr(err, why) == NULL)
    fail_msg("'%s': got '%s', wanted '%s'", text, err, why);
}

static void test_state_refuses(void **state) {
  (void)state;
  struct vab_chain_state s = sample();
  struct buf text = BUF_INIT;
  assert_int_equal(vab_chain_state_format(&s, &text), 0);
  /* Truncated, at every length. */
  for (size_t n = 0; n < text.len; n++) {
    struct vab_chain_state out;
    char err[128];
    assert_int_equal(vab_chain_state_parse(text.data, n, &out, err,
                                           sizeof err), -1);
  }
  char *extra = NULL;
  assert_true(asprintf(&extra, "%sx 1\n", text.data) > 0);
  expect_bad(extra, "line 11: unexpected");
  free(extra);
  buf_release(&text);
  expect_bad("vab-disk 2\n", "line 1");
  expect_bad("vab-disk 1\nbase nothex\nbase-sha256 -\nroot-device a\n"
             "root-fstype a\nroot-uuid a\nesp-device -\nesp-uuid -\n"
             "guest-os -\nroot-offset -\n", "line 2: base is not a key");
  expect_bad("vab-disk 1\nbase -\nbase-sha256 -\nroot-fstype ext4\n",
             "line 4: expected 'root-device VALUE'");
  expect_bad("vab-disk 1\nbase -\nbase-sha256 -\nroot-device /dev/s\x01\n",
             "line 4: bad root-device");
  expect_bad("vab-disk 1\nbase -\nbase-sha256 " "bbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nroot-device a\n"
             "root-fstype a\nroot-uuid a\nesp-device -\nesp-uuid -\n"
             "guest-os -\nroot-offset -\n", "line 3");
  expect_bad("vab-disk 1\nbase -\nbase-sha256 -\nroot-device a\n"
             "root-fstype a\nroot-uuid a\nesp-device -\nesp-uuid -\n"
             "guest-os -\nroot-offset 12x\n", "line 10: bad root-offset");
  struct vab_chain_state out;
  char err[128] = "";
  assert_int_equal(vab_chain_state_parse("vab-disk 1\0\n", 12, &out, err,
                                         sizeof err), -1);
  assert_string_equal(err, "not a state record");
}

struct area {
  char root[256];
  struct vab_ctx *ctx;
};

static int setup(void **state) {
  struct area *a = calloc(1, sizeof *a);
  const char *tmp = getenv("TMPDIR");
  snprintf(a->root, sizeof a->root, "%s/vab-test-chain-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  assert_non_null(mkdtemp(a->root));
  a->ctx = vab_ctx_new();
  *state = a;
  return 0;
}

static int teardown(void **state) {
  struct area *a = *state;
  remove_tree(a->root);
  vab_ctx_free(a->ctx);
  free(a);
  return 0;
}

static int sh(const char *fmt, ...) VAB_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int status = system(cmd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* path reads 'L' at 1 MiB (layout's) and 'P' at 2 MiB (the checkpoint's). */
static int reads_both(const char *path) {
  return sh("out=$(qemu-io -r -f qcow2 -c 'read -P 0x4c 1M 64k' -c "
            "'read -P 0x50 2M 64k' '%s' 2>&1) && "
            "! printf '%%s' \"$out\" | grep -q Pattern && "
            "[ \"$(printf '%%s\\n' \"$out\" | grep -c 'read 65536')\" = 2 ]",
            path);
}

static bool have_qemu_img(void) {
  return sh("command -v qemu-img >/dev/null 2>&1") == 0 &&
         sh("command -v qemu-io >/dev/null 2>&1") == 0;
}

/* A layout entry and a checkpoint made the way a build makes them, then
 * linked out into a work folder: the chain resolves in both places and
 * reads the checkpoint's data over the layout's. */
static void test_chain_in_cache_and_work(void **state) {
  struct area *a = *state;
  if (!have_qemu_img())
    skip();
  char cache[300], work[300];
  snprintf(cache, sizeof cache, "%s/cache/steps", a->root);
  snprintf(work, sizeof work, "%s/work/steps", a->root);
  assert_int_equal(sh("mkdir -p %s/%s %s/%s %s/%s %s/%s", cache, key_a, cache,
                      key_b, work, key_a, work, key_b), 0);
  /* Layout: 64 MiB with 'L' at 1 MiB. */
  assert_int_equal(sh("cd %s/%s && qemu-img create -q -f qcow2 disk.qcow2 64M"
                      " && qemu-io -f qcow2 -c 'write -P 0x4c 1M 64k' "
                      "disk.qcow2 >/dev/null", cache, key_a), 0);
  /* The session's overlay, written, copied, renamed onto the entry. */
  char overlay[400], layout_work[400], copy[400], backing[128];
  snprintf(layout_work, sizeof layout_work, "%s/%s/disk.qcow2", work, key_a);
  snprintf(overlay, sizeof overlay, "%s/work/disk.qcow2", a->root);
  char src[400];
  snprintf(src, sizeof src, "%s/%s/disk.qcow2", cache, key_a);
  assert_int_equal(vab_chain_copy(a->ctx, src, layout_work, true), 0);
  snprintf(backing, sizeof backing, "steps/%s/disk.qcow2", key_a);
  assert_int_equal(vab_chain_overlay(a->ctx, backing, overlay), 0);
  assert_int_equal(sh("qemu-io -f qcow2 -c 'write -P 0x50 2M 64k' %s "
                      ">/dev/null", overlay), 0);
  snprintf(copy, sizeof copy, "%s/%s/disk.qcow2", cache, key_b);
  assert_int_equal(vab_chain_copy(a->ctx, overlay, copy, false), 0);
  snprintf(backing, sizeof backing, "../%s/disk.qcow2", key_a);
  assert_int_equal(vab_chain_rebase(a->ctx, copy, backing), 0);
  /* In the cache... */
  assert_int_equal(sh("qemu-img check -q %s && qemu-img info --backing-chain "
                      "%s | grep -c '^image:' | grep -qx 2", copy, copy), 0);
  assert_int_equal(reads_both(copy), 0);
  /* ...and linked out into a work folder, where the names are the same. */
  char linked[400];
  snprintf(linked, sizeof linked, "%s/%s/disk.qcow2", work, key_b);
  assert_int_equal(vab_chain_copy(a->ctx, copy, linked, true), 0);
  assert_int_equal(reads_both(linked), 0);
  assert_int_equal(reads_both(src), 1);   /* the layout alone has no 'P' */
  /* Flattened: one standalone image with both. */
  char flat[400];
  snprintf(flat, sizeof flat, "%s/flat.qcow2", a->root);
  assert_int_equal(vab_chain_flatten(a->ctx, linked, "qcow2", flat), 0);
  assert_int_equal(sh("qemu-img info %s | grep -q 'backing file'", flat), 1);
  assert_int_equal(reads_both(flat), 0);
}

/* A copy keeps holes and bytes. */
static void test_copy_sparse(void **state) {
  struct area *a = *state;
  char src[400], dst[400];
  snprintf(src, sizeof src, "%s/sparse", a->root);
  snprintf(dst, sizeof dst, "%s/copy", a->root);
  int fd = open(src, O_WRONLY | O_CREAT | O_EXCL, 0644);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, "head", 4, 0), 4);
  assert_int_equal(pwrite(fd, "tail", 4, 64 << 20), 4);
  close(fd);
  assert_int_equal(vab_chain_copy(a->ctx, src, dst, false), 0);
  struct stat st;
  assert_int_equal(stat(dst, &st), 0);
  assert_int_equal(st.st_size, (64 << 20) + 4);
  assert_true(st.st_blocks * 512 < (8 << 20));
  assert_int_equal(sh("cmp -s %s %s", src, dst), 0);
  /* An existing name is never overwritten. */
  assert_int_equal(vab_chain_copy(a->ctx, src, dst, false), -1);
  assert_int_equal(vab_last_error(a->ctx)->code, VAB_E_IO);
}

static void test_cache_has(void **state) {
  struct area *a = *state;
  char dir[300];
  snprintf(dir, sizeof dir, "%s/cache", a->root);
  struct vab_cache *cache = NULL;
  assert_int_equal(vab_cache_open(a->ctx, dir, true, &cache), 0);
  assert_false(vab_cache_has(cache, key_a));
  assert_false(vab_cache_has(cache, "../etc"));
  struct vab_cache_lock lock;
  assert_int_equal(vab_cache_lock(cache, key_a, NULL, &lock), 0);
  struct vab_cache_writer *w = NULL;
  assert_int_equal(vab_cache_begin(cache, &lock, "test", "t", &w), 0);
  char *path = NULL;
  assert_int_equal(vab_cache_writer_path(w, "serial.log", &path), 0);
  assert_int_equal(sh("echo login: >%s", path), 0);
  free(path);
  assert_int_equal(vab_cache_writer_add(w, "serial.log"), 0);
  /* Not before the commit. */
  assert_false(vab_cache_has(cache, key_a));
  assert_int_equal(vab_cache_commit(w), 0);
  assert_true(vab_cache_has(cache, key_a));
  vab_cache_unlock(&lock);
  vab_cache_close(cache);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_state_round_trip),
    cmocka_unit_test(test_state_refuses),
    cmocka_unit_test_setup_teardown(test_chain_in_cache_and_work, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_copy_sparse, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cache_has, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
