/* builder/accel: parsing, the probe guest, and AUTO on this machine.
 *
 * The probe guest is checked under TCG, where it must run to its end, so a
 * broken probe image cannot pass for "KVM does not work" (test-accel-probe
 * checks what AUTO makes of KVM on this machine). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/accel.h"
#include "common/subprocess.h"

static void test_parse(void **state) {
  (void)state;
  enum vab_accel a = VAB_ACCEL_TCG;
  assert_int_equal(vab_accel_parse("auto", &a), 0);
  assert_int_equal(a, VAB_ACCEL_AUTO);
  assert_int_equal(vab_accel_parse("kvm", &a), 0);
  assert_int_equal(a, VAB_ACCEL_KVM);
  assert_int_equal(vab_accel_parse("tcg", &a), 0);
  assert_int_equal(a, VAB_ACCEL_TCG);
  assert_int_equal(vab_accel_parse("KVM", &a), -1);
  assert_int_equal(vab_accel_parse("", &a), -1);
  assert_int_equal(vab_accel_parse("hvf", &a), -1);
  assert_int_equal(a, VAB_ACCEL_TCG);   /* untouched on failure */
  assert_string_equal(vab_accel_name(VAB_ACCEL_AUTO), "auto");
  assert_string_equal(vab_accel_name(VAB_ACCEL_KVM), "kvm");
  assert_string_equal(vab_accel_name(VAB_ACCEL_TCG), "tcg");
}

static void test_tcg_requested(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  enum vab_accel r = VAB_ACCEL_AUTO;
  char reason[256];
  assert_int_equal(vab_accel_resolve(ctx, VAB_ACCEL_TCG, &r, reason,
                                     sizeof reason), 0);
  assert_int_equal(r, VAB_ACCEL_TCG);
  assert_string_equal(reason, "TCG requested");
  vab_ctx_free(ctx);
}

/* The probe guest goes through real, protected and long mode and reports
 * on the serial port: under TCG it must pass. */
static void test_probe_guest_runs_under_tcg(void **state) {
  (void)state;
  if (!subprocess_have_program("qemu-system-x86_64"))
    skip();
  struct vab_ctx *ctx = vab_ctx_new();
  char reason[256] = "";
  int r = vab_accel_probe(ctx, VAB_ACCEL_TCG, 20000, reason, sizeof reason);
  if (r != 1)
    fail_msg("TCG probe: %d, %s", r, reason);
  assert_non_null(strstr(reason, "TCG probe ran in "));
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_tcg_requested),
      cmocka_unit_test(test_probe_guest_runs_under_tcg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
