/* Unit tests: VMDK header/marker/descriptor encoding, VHD footer encoding
 * and qemu-img progress parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "formats/vhd/vhd.h"
#include "formats/vmdk/vmdk.h"

static void test_header_bytes(void **state) {
  struct vmdk_header h = {
      .version = 3,
      .flags = 0x30001,
      .capacity = 0x200000,
      .grain_size = 128,
      .descriptor_offset = 1,
      .descriptor_size = 20,
      .num_gtes_per_gt = 512,
      .gd_offset = VMDK_GD_AT_END,
      .overhead = 128,
      .compress_algorithm = 1,
  };
  uint8_t s[512];
  vmdk_header_encode(&h, s);
  static const uint8_t expect_start[] = {
      'K', 'D', 'M', 'V', 3, 0, 0, 0, 0x01, 0x00, 0x03, 0x00,  /* flags */
      0, 0, 0x20, 0, 0, 0, 0, 0,                               /* capacity */
      128, 0, 0, 0, 0, 0, 0, 0,                                /* grainSize */
      1, 0, 0, 0, 0, 0, 0, 0,                                  /* descOffset */
      20, 0, 0, 0, 0, 0, 0, 0,                                 /* descSize */
      0, 2, 0, 0,                                              /* numGTEs */
  };
  assert_memory_equal(s, expect_start, sizeof expect_start);
  for (int i = 56; i < 64; i++)
    assert_int_equal(s[i], 0xff);  /* GD_AT_END */
  assert_int_equal(s[64], 128);
  assert_int_equal(s[72], 0);
  assert_memory_equal(s + 73, "\n \r\n", 4);
  assert_int_equal(s[77], 1);
  assert_int_equal(s[78], 0);
  for (int i = 79; i < 512; i++)
    assert_int_equal(s[i], 0);

  struct vmdk_header back;
  assert_true(vmdk_header_decode(s, &back));
  assert_int_equal(back.version, 3);
  assert_int_equal(back.flags, 0x30001);
  assert_int_equal(back.capacity, 0x200000);
  assert_true(back.gd_offset == VMDK_GD_AT_END);
  assert_true(back.newline_bytes_ok);
  assert_int_equal(back.compress_algorithm, 1);

  s[75] = '\n';  /* what an FTP text-mode transfer does to "\r\n" */
  assert_true(vmdk_header_decode(s, &back));
  assert_false(back.newline_bytes_ok);
  s[0] = 'X';
  assert_false(vmdk_header_decode(s, &back));
}

static void test_marker_bytes(void **state) {
  uint8_t m[512];
  vmdk_marker_encode(m, 4, VMDK_MARKER_GT);
  static const uint8_t expect[16] = {4, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 1, 0, 0, 0};
  assert_memory_equal(m, expect, sizeof expect);
  for (int i = 16; i < 512; i++)
    assert_int_equal(m[i], 0);
  vmdk_marker_encode(m, 0, VMDK_MARKER_EOS);
  for (int i = 0; i < 512; i++)
    assert_int_equal(m[i], 0);
}

static void test_descriptor_round_trip(void **state) {
  struct vmdk_descriptor d = {.cid = 0x1234abcd, .extent_sectors = 2097152};
  strcpy(d.create_type, "streamOptimized");
  strcpy(d.adapter_type, "lsilogic");
  strcpy(d.hw_version, "4");
  struct buf b = BUF_INIT;
  assert_int_equal(vmdk_descriptor_format(&b, &d, "disk.vmdk"), 0);
  assert_non_null(strstr(b.data, "\nCID=1234abcd\n"));
  assert_non_null(strstr(b.data, "\nRW 2097152 SPARSE \"disk.vmdk\"\n"));
  assert_non_null(strstr(b.data, "\nddb.adapterType = \"lsilogic\"\n"));
  /* 2097152 / (255 * 63) rounded up */
  assert_non_null(strstr(b.data, "\nddb.geometry.cylinders = \"131\"\n"));
  assert_non_null(strstr(b.data, "\nddb.geometry.heads = \"255\"\n"));
  assert_non_null(strstr(b.data, "ddb.longContentID = \""));
  assert_non_null(strstr(b.data, "1234abcd\"\n"));

  struct vmdk_descriptor p;
  const char *why = NULL;
  assert_int_equal(vmdk_descriptor_parse(b.data, b.len, &p, &why), 0);
  assert_int_equal(p.cid, 0x1234abcd);
  assert_string_equal(p.create_type, "streamOptimized");
  assert_string_equal(p.adapter_type, "lsilogic");
  assert_string_equal(p.hw_version, "4");
  assert_int_equal(p.extent_sectors, 2097152);
  assert_string_equal(p.extent_type, "SPARSE");
  assert_int_equal(p.n_extents, 1);
  buf_release(&b);

  strcpy(d.adapter_type, "ide");
  assert_int_equal(vmdk_descriptor_format(&b, &d, "x.vmdk"), 0);
  assert_non_null(strstr(b.data, "\nddb.geometry.heads = \"16\"\n"));
  assert_non_null(strstr(b.data, "\nddb.geometry.cylinders = \"2081\"\n"));
  buf_release(&b);
}

static void test_descriptor_parse_variants(void **state) {
  /* qemu's spelling: no spaces, tabs, NUL padding after the text. */
  static const char text[] =
      "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n"
      "parentCID=ffffffff\ncreatetype = \"monolithicSparse\"\n\n"
      "# Extent description\nRW 8192 SPARSE \"a.vmdk\"\n\n"
      "ddb.virtualHWVersion\t= \"6\"\n\0\0\0garbage";
  struct vmdk_descriptor p;
  const char *why = NULL;
  assert_int_equal(vmdk_descriptor_parse(text, sizeof text, &p, &why), 0);
  assert_int_equal(p.cid, 0xfffffffe);
  assert_string_equal(p.create_type, "monolithicSparse");
  assert_string_equal(p.hw_version, "6");
  assert_int_equal(p.extent_sectors, 8192);
  assert_string_equal(p.extent_file, "a.vmdk");
  assert_int_equal(p.parent_cid, VMDK_NO_PARENT);
  assert_string_equal(p.parent_hint, "");
}

/* A delta disk and a multi-extent descriptor: what the reader's
 * confinement rules look at. */
static void test_descriptor_parse_links(void **state) {
  static const char child[] =
      "# Disk DescriptorFile\nversion=1\nCID=81352bca\n"
      "parentCID=4c9d7a57\ncreateType=\"monolithicSparse\"\n"
      "parentFileNameHint=\"../base/p.vmdk\"\n"
      "RW 2048 SPARSE \"c.vmdk\"\n";
  struct vmdk_descriptor p;
  const char *why = NULL;
  assert_int_equal(vmdk_descriptor_parse(child, strlen(child), &p, &why), 0);
  assert_int_equal(p.parent_cid, 0x4c9d7a57);
  assert_string_equal(p.parent_hint, "../base/p.vmdk");
  assert_string_equal(p.extent_file, "c.vmdk");

  static const char split[] =
      "# Disk DescriptorFile\nCID=1\ncreateType=\"twoGbMaxExtentFlat\"\n"
      "RW 4192256 FLAT \"/etc/shadow\" 0\nRW 8 FLAT \"d-f002.vmdk\" 0\n"
      "RW 8 ZERO\n";
  assert_int_equal(vmdk_descriptor_parse(split, strlen(split), &p, &why), 0);
  assert_int_equal(p.n_extents, 3);
  assert_string_equal(p.extent_type, "FLAT");
  assert_string_equal(p.extent_file, "/etc/shadow");

  static const char bad_parent[] =
      "# Disk DescriptorFile\nCID=1\nparentCID=nothex\n";
  assert_int_equal(
      vmdk_descriptor_parse(bad_parent, strlen(bad_parent), &p, &why), -1);
  assert_string_equal(why, "parentCID is not 8 hex digits");
  static const char unterminated[] =
      "# Disk DescriptorFile\nRW 8 FLAT \"no-end-quote\n";
  assert_int_equal(
      vmdk_descriptor_parse(unterminated, strlen(unterminated), &p, &why), -1);
  assert_string_equal(why, "malformed extent line");
  assert_true(vmdk_descriptor_signature((const uint8_t *)child, 30));
  assert_false(vmdk_descriptor_signature((const uint8_t *)"KDMV", 4));
}

static void expect_parse_error(const char *text, const char *reason) {
  struct vmdk_descriptor p;
  const char *why = NULL;
  assert_int_equal(vmdk_descriptor_parse(text, strlen(text), &p, &why), -1);
  assert_non_null(why);
  assert_string_equal(why, reason);
}

static void test_descriptor_errors(void **state) {
  expect_parse_error("CID=1\ncreateType=\"x\"\nRW 1 SPARSE \"f\"\n",
                     "no '# Disk DescriptorFile' line");
  expect_parse_error("# Disk DescriptorFile\nCID=1\nRW 1 SPARSE \"f\"\n",
                     "no createType");
  expect_parse_error("# Disk DescriptorFile\ncreateType=\"x\"\n"
                     "RW 1 SPARSE \"f\"\n",
                     "no CID");
  expect_parse_error("# Disk DescriptorFile\nCID=zz\n", "CID is not 8 hex digits");
  expect_parse_error("# Disk DescriptorFile\nCID=1\ncreateType=\"x\"\n",
                     "no extent line");
  expect_parse_error("# Disk DescriptorFile\nRW lots SPARSE\n",
                     "malformed extent line");
  expect_parse_error("# Disk DescriptorFile\njunk\n",
                     "line is neither KEY=VALUE, an extent nor a comment");
  expect_parse_error("# Disk DescriptorFile\ncreateType=\""
                     "0123456789012345678901234567890123456789\"\n",
                     "createType is too long");
}

/* The adapter types are the writer's option spec, the only list of them. */
static bool adapter_type_valid(const char *name) {
  struct vab_option_problem p;
  const struct vab_option_spec *spec =
      vab_option_spec_find(vmdk_options, "adapter_type");
  assert_non_null(spec);
  return vab_option_check_value("vmdk", spec, name, &p) == 0;
}

static void test_adapter_types(void **state) {
  assert_true(adapter_type_valid("ide"));
  assert_true(adapter_type_valid("buslogic"));
  assert_true(adapter_type_valid("lsilogic"));
  assert_true(adapter_type_valid("legacyESX"));
  assert_false(adapter_type_valid("pvscsi"));
  assert_false(adapter_type_valid("IDE"));
}

static void test_vhd_footer(void **state) {
  struct vhd_footer f = {0};
  f.disk_type = VHD_TYPE_FIXED;
  memcpy(f.creator_app, "vab ", 4);
  f.original_size = f.current_size = 20u << 20;
  f.cylinders = 65535;
  f.heads = 16;
  f.sectors_per_track = 255;
  uint8_t raw[512];
  vhd_footer_encode(&f, raw);
  assert_memory_equal(raw, "conectix", 8);
  static const uint8_t fixed_fields[] = {
      0, 0, 0, 2,                                     /* features */
      0, 1, 0, 0,                                     /* version */
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* data offset */
      0, 0, 0, 0,                                     /* timestamp */
      'v', 'a', 'b', ' ', 0, 0, 0, 0, 'W', 'i', '2', 'k',
      0, 0, 0, 0, 0x01, 0x40, 0, 0,                   /* original size */
      0, 0, 0, 0, 0x01, 0x40, 0, 0,                   /* current size */
      0xff, 0xff, 16, 255,                            /* geometry */
      0, 0, 0, 2,                                     /* fixed */
  };
  assert_memory_equal(raw + 8, fixed_fields, sizeof fixed_fields);
  /* The checksum makes the byte sum (checksum field as 0) all ones. */
  uint32_t sum = 0;
  for (int i = 0; i < 512; i++)
    if (i < 64 || i >= 68)
      sum += raw[i];
  uint32_t stored = (uint32_t)raw[64] << 24 | (uint32_t)raw[65] << 16 |
                    (uint32_t)raw[66] << 8 | raw[67];
  assert_int_equal(stored, ~sum);

  struct vhd_footer back;
  assert_true(vhd_footer_decode(raw, &back));
  assert_int_equal(back.current_size, 20u << 20);
  assert_int_equal(vhd_footer_virtual_size(&back), 20u << 20);
  /* qemu's CHS rule: "qemu" creator with a real geometry means CHS. */
  memcpy(back.creator_app, "qemu", 4);
  back.cylinders = 100;
  back.heads = 16;
  back.sectors_per_track = 63;
  assert_int_equal(vhd_footer_virtual_size(&back), 100 * 16 * 63 * 512);
  /* As qemu's vpc driver: any creator but the current_size ones. */
  memcpy(back.creator_app, "xyz ", 4);
  assert_int_equal(vhd_footer_virtual_size(&back), 100 * 16 * 63 * 512);
  memcpy(back.creator_app, "win ", 4);
  assert_int_equal(vhd_footer_virtual_size(&back), 20u << 20);
  memcpy(back.creator_app, "qem2", 4);
  assert_int_equal(vhd_footer_virtual_size(&back), 20u << 20);
  memcpy(back.creator_app, "tap\0", 4);
  assert_int_equal(vhd_footer_virtual_size(&back), 20u << 20);
  raw[0] = 'C';
  assert_false(vhd_footer_decode(raw, &back));
}

static void test_progress_lines(void **state) {
  double p = -1;
  assert_true(vhdx_parse_progress("    (42.50/100%)", &p));
  assert_true(p > 42.49 && p < 42.51);
  assert_true(vhdx_parse_progress("(100.00/100%)", &p));
  assert_true(p > 99.99);
  assert_false(vhdx_parse_progress("qemu-img: error", &p));
  assert_false(vhdx_parse_progress("(12.00/50%)", &p));
  assert_false(vhdx_parse_progress("(120.00/100%)", &p));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_bytes),
      cmocka_unit_test(test_marker_bytes),
      cmocka_unit_test(test_descriptor_round_trip),
      cmocka_unit_test(test_descriptor_parse_variants),
      cmocka_unit_test(test_descriptor_parse_links),
      cmocka_unit_test(test_descriptor_errors),
      cmocka_unit_test(test_adapter_types),
      cmocka_unit_test(test_vhd_footer),
      cmocka_unit_test(test_progress_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
