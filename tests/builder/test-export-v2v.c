/* formats/ova against a real consumer: virt-v2v -i ova parses vab's OVF,
 * checks its .mf against the members, inspects the guest in the VMDK and
 * converts it, for both targets.
 *
 * It needs a Debian disk with GRUB (virt-v2v refuses other bootloaders):
 * $VAB_TEST_DEBIAN_DISK if set, else one built once with
 * `vab build examples/web.yaml --no-test --only qcow2` and kept in
 * $VAB_TEST_CACHE (default /var/tmp/vab-test-cache).  Under TCG each
 * conversion takes about 25 minutes on an idle 2-core machine.  CI's run
 * has virt-v2v import the vmware OVA of examples/web.yaml in test-build-web.sh;
 * this test, which builds OVAs from other hardware: settings through
 * vab_ova_write() directly, runs only when asked:
 *
 *   VAB_TEST_V2V=1 meson test -C build test-export-v2v
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/subprocess.h"
#include "formats/ova/ova.h"
#include "vab/vab.h"

static char disk[1024];
static char work[64];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fprintf(stderr, "+ %s\n", cmd);
  int status = system(cmd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void find_disk(void) {
  const char *given = getenv("VAB_TEST_DEBIAN_DISK");
  if (given != NULL && *given != '\0') {
    snprintf(disk, sizeof disk, "%s", given);
    return;
  }
  const char *vab = getenv("VAB");
  const char *srcdir = getenv("SRCDIR");
  const char *cache = getenv("VAB_TEST_CACHE");
  if (cache == NULL || *cache == '\0')
    cache = "/var/tmp/vab-test-cache";
  char out[512];
  snprintf(out, sizeof out, "%s/debian-web", cache);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "ls %s/web-*.qcow2 2>/dev/null | head -n 1", out);
  FILE *p = popen(cmd, "r");
  if (p != NULL) {
    if (fgets(disk, sizeof disk, p) == NULL)
      disk[0] = '\0';
    pclose(p);
    disk[strcspn(disk, "\n")] = '\0';
  }
  if (disk[0] != '\0' || vab == NULL || srcdir == NULL)
    return;
  if (run("mkdir -p %s && '%s' build '%s/examples/web.yaml' --no-test "
          "--only qcow2 -o %s >&2",
          out, vab, srcdir, out) != 0)
    return;
  p = popen(cmd, "r");
  if (p != NULL) {
    if (fgets(disk, sizeof disk, p) == NULL)
      disk[0] = '\0';
    pclose(p);
    disk[strcspn(disk, "\n")] = '\0';
  }
}

static int setup(void **state) {
  (void)state;
  snprintf(work, sizeof work, "/var/tmp/vab-test-v2v-XXXXXX");
  if (mkdtemp(work) == NULL)
    return -1;
  if (subprocess_have_program("virt-v2v") &&
      subprocess_have_program("nbdcopy") && subprocess_have_program("nbdkit"))
    find_disk();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return run("rm -rf %s", work);
}

static void convert_target(const char *target) {
  if (disk[0] == '\0')
    skip();
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_ova_hardware hw = {.cpus = 2, .memory = 1ull << 30, .nics = 1,
                                .disk_bus = "scsi", .nic_model = "auto"};
  struct vab_ova_opts o = {
      .disk_path = disk,
      .name = "web",
      .target = target,
      .hardware = &hw,
      .guest_os = "debian12",
  };
  char ova[256], out[256];
  snprintf(ova, sizeof ova, "%s/web-%s.ova", work, target);
  snprintf(out, sizeof out, "%s/v2v-%s", work, target);
  if (vab_ova_write(ctx, &o, ova, NULL) < 0)
    fail_msg("ova: %s", vab_last_error(ctx)->message);
  /* virt-v2v's own appliance runs under TCG here, like vab's builder. */
  assert_int_equal(run("mkdir -p %s && LIBGUESTFS_BACKEND=direct "
                       "LIBGUESTFS_BACKEND_SETTINGS=force_tcg "
                       "virt-v2v -i ova %s -o local -os %s -of qcow2 >&2",
                       out, ova, out),
                   0);
  assert_int_equal(run("test -s %s/web-sda && test -s %s/web.xml", out, out),
                   0);
  assert_int_equal(run("qemu-img check -q %s/web-sda", out), 0);
  /* The converted guest keeps the OVF's memory and CPUs. */
  assert_int_equal(run("grep -q '<vcpu[^>]*>2</vcpu>' %s/web.xml", out), 0);
  assert_int_equal(run("rm -rf %s %s", out, ova), 0);
  vab_ctx_free(ctx);
}

static void test_vmware(void **state) {
  (void)state;
  convert_target("vmware");
}

static void test_virtualbox(void **state) {
  (void)state;
  convert_target("virtualbox");
}

int main(void) {
  const char *wanted = getenv("VAB_TEST_V2V");
  if (wanted == NULL || strcmp(wanted, "1") != 0) {
    printf("SKIP: set VAB_TEST_V2V=1 to convert vab's OVAs with virt-v2v\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vmware),
      cmocka_unit_test(test_virtualbox),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
