/* vab convert: copy a disk image into another format. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/buf.h"

static int run_convert(struct vab_ctx *ctx, int argc, char **argv);

const struct cli_command cli_cmd_convert = {
  .name = "convert",
  .run = run_convert,
  .summary = "convert a disk image to another format",
  .usage =
    "usage: vab convert [-f FMT] -O FMT [-o KEY=VALUE[,KEY=VALUE]...] [--json]\n"
    "                   [-q] [--trust-backing] SRC DST\n"
    "\n"
    "Read the disk image SRC and write it to DST in format FMT.  Holes and\n"
    "zero blocks of SRC are never stored.  DST is written under a temporary\n"
    "name in its folder and renamed when complete; on an error or Ctrl-C\n"
    "nothing is left behind.\n"
    "\n"
    "Options:\n"
    "  -f, --source-format FMT  format of SRC (default: guessed from its\n"
    "                           content; raw if nothing matches)\n"
    "  -O, --format FMT         format of DST: qcow2, raw, and every other\n"
    "                           format in docs/formats.md\n"
    "  -o, --option KEY=VALUE   a format option (repeatable, or comma\n"
    "                           separated); see below\n"
    "  --json                   write a JSON summary to stdout\n"
    "  --trust-backing          follow the backing files and VMDK parents of\n"
    "                           SRC (and of backing_file=) in any folder\n"
    "                           (default: only inside the folder of the\n"
    "                           image that names them; see docs/formats.md,\n"
    "                           Confinement)\n"
    "  -q, --quiet              no progress bar\n"
    "  -h, --help               show this help\n"
    "\n"
    "Options for every format:\n"
    "  threads=N                worker threads (default: online cores)\n"
    "qcow2:\n"
    "  cluster_size=SIZE        512 to 2M, a power of two (default 64K)\n"
    "  compression=none|zlib|zstd   compress clusters (default none)\n"
    "  level=N                  compression level (zlib 1-12, default 6;\n"
    "                           zstd 1-22, default 3)\n"
    "  dedup=on|off             store identical clusters once (default off)\n"
    "  backing_file=PATH        layer the image on PATH: clusters that read\n"
    "                           the same from PATH are not stored\n"
    "  backing_fmt=FMT          format of the backing file (default: guessed)\n"
    "raw:\n"
    "  compression=none|zstd    zstd: write one .zst stream (default none)\n"
    "  level=N                  zstd level 1-22 (default 3)\n"
    "vmdk:\n"
    "  subformat=streamOptimized|monolithicSparse   (default streamOptimized)\n"
    "  adapter_type=ide|buslogic|lsilogic|legacyESX (default lsilogic)\n"
    "  hwversion=N              ddb.virtualHWVersion 4-22 (default 4)\n"
    "  level=N                  zlib level 1-12 (default 5)\n"
    "  cid=XXXXXXXX             descriptor CID, 8 hex digits (default:\n"
    "                           derived from the size and options)\n"
    "  extent_file=NAME         file name in the descriptor (default: DST's)\n"
    "vhd:\n"
    "  subformat=fixed          the only one (size rounded up to a MiB)\n"
    "vhdx (written by qemu-img):\n"
    "  subformat=dynamic|fixed  (default dynamic)\n"
    "\n"
    "Exit status: 0 converted, 1 failed or cancelled, 2 usage error.\n",
};

static int append_options(struct buf *all, const char *text) {
  if (all->len > 0 && buf_putc(all, ',') < 0)
    return -1;
  return buf_puts(all, text);
}

/* The fields of every --json result that name the conversion's inputs. */
static void print_json_inputs(const char *src, const char *dst,
                              const char *format) {
  fputs("{\"source\":", stdout);
  cli_json_string(stdout, src);
  fputs(",\"destination\":", stdout);
  cli_json_string(stdout, dst);
  fputs(",\"format\":", stdout);
  cli_json_string(stdout, format);
}

static void print_json(const char *src, const char *dst, const char *format,
                       const struct vab_convert_result *res) {
  print_json_inputs(src, dst, format);
  double ratio = res->file_size
                     ? (double)res->data_bytes / (double)res->file_size
                     : 0.0;
  fprintf(stdout,
          ",\"virtual_size\":%llu,\"data_bytes\":%llu,\"zero_bytes\":%llu,"
          "\"stored_bytes\":%llu,\"dedup_bytes\":%llu,\"file_size\":%llu,"
          "\"seconds\":%.3f,\"compression_ratio\":%.3f,"
          "\"throughput_mib_s\":%.1f}\n",
          (unsigned long long)res->virtual_size,
          (unsigned long long)res->data_bytes,
          (unsigned long long)res->zero_bytes,
          (unsigned long long)res->stored_bytes,
          (unsigned long long)res->dedup_bytes,
          (unsigned long long)res->file_size, res->seconds, ratio,
          res->seconds > 0
              ? (double)res->virtual_size / 1048576.0 / res->seconds
              : 0.0);
}

static void print_json_failure(struct vab_ctx *ctx, const char *src,
                               const char *dst, const char *format) {
  print_json_inputs(src, dst, format);
  cli_json_failure_end(stdout, ctx);
}

static int run_convert(struct vab_ctx *ctx, int argc, char **argv) {
  static const struct option longopts[] = {
    {"source-format", required_argument, NULL, 'f'},
    {"format", required_argument, NULL, 'O'},
    {"option", required_argument, NULL, 'o'},
    {"json", no_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"trust-backing", no_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
  };
  unsigned open_flags = 0;
  const char *src_format = NULL, *dst_format = NULL;
  struct buf option_text = BUF_INIT;
  bool json = false, quiet = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+f:O:o:q", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': src_format = optarg; break;
    case 'O': dst_format = optarg; break;
    case 'o':
      if (append_options(&option_text, optarg) < 0) {
        buf_release(&option_text);
        fprintf(stderr, "vab convert: out of memory\n");
        return EXIT_FAILED;
      }
      break;
    case 'j': json = true; break;
    case 'q': quiet = true; break;
    case 't': open_flags |= VAB_OPEN_TRUST_BACKING; break;
    default:
      buf_release(&option_text);
      if (optopt != 0 && strchr("fOo", optopt) != NULL)
        return cli_usage_error(&cli_cmd_convert, "option -%c needs a value",
                               optopt);
      return cli_usage_error(&cli_cmd_convert, "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (argc - optind != 2) {
    buf_release(&option_text);
    return cli_usage_error(&cli_cmd_convert,
                           argc - optind < 2 ? "missing SRC or DST"
                                             : "too many arguments");
  }
  if (dst_format == NULL) {
    buf_release(&option_text);
    return cli_usage_error(&cli_cmd_convert,
                           "missing -O FMT (the output format)");
  }
  const char *src = argv[optind], *dst = argv[optind + 1];
  struct vab_option *options = NULL;
  size_t n_options = 0;
  char *options_buf = NULL;
  if (option_text.len > 0 &&
      vab_options_parse(ctx, option_text.data, &options, &n_options,
                        &options_buf) < 0) {
    buf_release(&option_text);
    cli_print_diags(ctx, "vab convert");
    if (json)
      print_json_failure(ctx, src, dst, dst_format);
    return EXIT_USAGE;
  }
  buf_release(&option_text);

  struct vab_convert_opts opts = {
    .src_format = src_format,
    .dst_format = dst_format,
    .options = options,
    .n_options = n_options,
    .open_flags = open_flags,
  };
  struct vab_convert_result res;
  cli_progress_attach(ctx, quiet || json);
  /* Warnings and notes from the readers and writers (a size rounded up
   * to a sector, say). */
  static struct cli_log log = {"vab convert", false};
  vab_ctx_set_log(ctx, cli_log_to_stderr, &log);
  int r = vab_convert(ctx, src, dst, &opts, &res);
  vab_ctx_set_log(ctx, NULL, NULL);
  cli_progress_done();
  free(options);
  free(options_buf);
  if (r < 0) {
    cli_print_diags(ctx, "vab convert");
    if (json)
      print_json_failure(ctx, src, dst, dst_format);
    const struct vab_diag *d = vab_last_error(ctx);
    if (d != NULL && d->code == VAB_E_USAGE && vab_error_count(ctx) == 1)
      return EXIT_USAGE;
    return EXIT_FAILED;
  }
  if (json)
    print_json(src, dst, dst_format, &res);
  else if (!quiet)
    fprintf(stderr,
            "%s: %s, %.1f MiB virtual, %.1f MiB data, %.1f MiB file, "
            "%.2f s\n",
            dst, dst_format, (double)res.virtual_size / 1048576.0,
            (double)res.data_bytes / 1048576.0,
            (double)res.file_size / 1048576.0, res.seconds);
  return EXIT_OK;
}
