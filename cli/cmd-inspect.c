/* vab inspect: what a disk image is, and whether its metadata is sound. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int run_inspect(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_inspect = {
  .name = "inspect",
  .run = run_inspect,
  .summary = "show a disk image's format, sizes and backing chain; check it",
  .usage =
    "usage: vab inspect [-f FMT] [--json] [--trust-backing] IMAGE\n"
    "\n"
    "Show the format, subformat, virtual size, file size, allocated bytes,\n"
    "cluster or grain size, compression, dedup savings (clusters shared by\n"
    "several guest clusters) and backing chain of IMAGE, and check its\n"
    "metadata: every refcount is recounted from the tables and compared\n"
    "(errors: references the image does not count; leaks: space counted\n"
    "but unused).  Problems found are listed on stderr.\n"
    "\n"
    "Options:\n"
    "  -f, --format FMT  format of IMAGE (default: guessed from its content)\n"
    "  --json            write the result as JSON to stdout\n"
    "  --trust-backing   follow backing files and VMDK parents in any folder\n"
    "                    (default: only inside the folder of the image that\n"
    "                    names them; see docs/formats.md, Confinement)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 image sound, 1 the image could not be read or the check\n"
    "found errors, 2 usage error.\n",
};

static void print_text(const struct vab_reader *r, bool checked,
                       const struct vab_check_result *check) {
  const struct vab_image_info *i = &r->info;
  printf("image:            %s\n", r->path);
  printf("format:           %s\n", i->format);
  if (i->subformat[0])
    printf("subformat:        %s\n", i->subformat);
  printf("virtual size:     %llu bytes\n", (unsigned long long)i->virtual_size);
  printf("file size:        %llu bytes\n", (unsigned long long)i->file_size);
  printf("allocated bytes:  %llu\n", (unsigned long long)i->allocated_bytes);
  if (i->cluster_size)
    printf("cluster size:     %u\n", i->cluster_size);
  printf("compression:      %s\n", i->compression[0] ? i->compression : "none");
  printf("shared clusters:  %llu\n", (unsigned long long)i->shared_clusters);
  printf("dedup savings:    %llu bytes\n",
         (unsigned long long)i->dedup_saved_bytes);
  if (i->snapshots)
    printf("snapshots:        %u\n", i->snapshots);
  for (const struct vab_reader *b = r; b->info.backing_file[0]; b = b->backing) {
    printf("backing file:     %s", b->info.backing_file);
    if (b->backing != NULL)
      printf(" (%s, %s)", b->backing->info.format, b->backing->path);
    putchar('\n');
    if (b->backing == NULL)
      break;
  }
  /* A raw image is guest bytes only: its check has nothing to look at, and
   * "0 entries checked" would read as a check that skipped everything. */
  if (checked && strcmp(i->format, "raw") == 0)
    printf("check:            no metadata to check\n");
  else if (checked)
    printf("check:            %llu errors, %llu leaks, %llu entries checked\n",
           (unsigned long long)check->errors, (unsigned long long)check->leaks,
           (unsigned long long)check->checked);
  else
    printf("check:            not available for %s\n", i->format);
}

static void print_json(const struct vab_reader *r, bool checked,
                       const struct vab_check_result *check) {
  const struct vab_image_info *i = &r->info;
  fputs("{\"image\":", stdout);
  cli_json_string(stdout, r->path);
  fputs(",\"format\":", stdout);
  cli_json_string(stdout, i->format);
  fputs(",\"subformat\":", stdout);
  cli_json_string(stdout, i->subformat);
  fprintf(stdout,
          ",\"virtual_size\":%llu,\"file_size\":%llu,\"allocated_bytes\":%llu,"
          "\"cluster_size\":%u,\"compression\":",
          (unsigned long long)i->virtual_size,
          (unsigned long long)i->file_size,
          (unsigned long long)i->allocated_bytes, i->cluster_size);
  cli_json_string(stdout, i->compression[0] ? i->compression : "none");
  fprintf(stdout, ",\"shared_clusters\":%llu,\"dedup_saved_bytes\":%llu,"
          "\"snapshots\":%u",
          (unsigned long long)i->shared_clusters,
          (unsigned long long)i->dedup_saved_bytes, i->snapshots);
  fputs(",\"backing_chain\":[", stdout);
  int n = 0;
  for (const struct vab_reader *b = r->backing; b != NULL; b = b->backing) {
    fputs(n++ ? ",{\"path\":" : "{\"path\":", stdout);
    cli_json_string(stdout, b->path);
    fputs(",\"format\":", stdout);
    cli_json_string(stdout, b->info.format);
    fprintf(stdout, ",\"virtual_size\":%llu}",
            (unsigned long long)b->info.virtual_size);
  }
  fputs("]", stdout);
  if (checked)
    fprintf(stdout,
            ",\"check\":{\"errors\":%llu,\"leaks\":%llu,\"checked\":%llu}",
            (unsigned long long)check->errors,
            (unsigned long long)check->leaks,
            (unsigned long long)check->checked);
  else
    fputs(",\"check\":null", stdout);
  fputs("}\n", stdout);
}

static void print_json_failure(struct vab_ctx *ctx, const char *path) {
  fputs("{\"image\":", stdout);
  cli_json_string(stdout, path);
  cli_json_failure_end(stdout, ctx);
}

static int run_inspect(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"format", required_argument, NULL, 'f'},
    {"json", no_argument, NULL, 'j'},
    {"trust-backing", no_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
  };
  const char *format = NULL;
  bool json = false;
  unsigned open_flags = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "f:", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': format = optarg; break;
    case 'j': json = true; break;
    case 't': open_flags |= VAB_OPEN_TRUST_BACKING; break;
    default:
      if (optopt == 'f')
        return cli_usage_error(&cli_cmd_inspect, "option -f needs a value");
      return cli_usage_error(&cli_cmd_inspect, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error(&cli_cmd_inspect, argc == optind
                                                 ? "missing IMAGE"
                                                 : "too many arguments");
  static struct cli_log log = {"vab inspect", false};
  vab_ctx_set_log(ctx, cli_log_to_stderr, &log);
  struct vab_reader *r = NULL;
  if (vab_image_open(ctx, argv[optind], format, open_flags, &r) < 0) {
    cli_print_diags(ctx, "vab inspect");
    if (json)
      print_json_failure(ctx, argv[optind]);
    const struct vab_diag *d = vab_last_error(ctx);
    return d != NULL && d->code == VAB_E_USAGE ? EXIT_USAGE : EXIT_FAILED;
  }
  struct vab_check_result check;
  memset(&check, 0, sizeof check);
  bool checked = false;
  int status = EXIT_OK;
  if (r->format->check != NULL) {
    if (r->format->check(r, &check) < 0) {
      cli_print_diags(ctx, "vab inspect");
      if (json)
        print_json_failure(ctx, argv[optind]);
      vab_image_close(r);
      return EXIT_FAILED;
    }
    checked = true;
    if (check.errors > 0)
      status = EXIT_FAILED;
  }
  if (json)
    print_json(r, checked, &check);
  else
    print_text(r, checked, &check);
  vab_image_close(r);
  return status;
}
