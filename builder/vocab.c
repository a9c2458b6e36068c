/* The template vocabulary (see vocab.h). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "vab/format.h"
#include "vab/provisioner.h"
#include "builder/export.h"
#include "builder/sysprep.h"
#include "builder/vocab.h"
#include "publish/ref.h"

/* `vm`: a VM definition beside the disk (builder/vmdef.h). */
static const char *const libvirt_vms[] = {"none", "libvirt", NULL};
static const char *const vmx_vms[] = {"none", "vmx", NULL};
static const char *const hyperv_vms[] = {"none", "hyperv", NULL};
static const char *const ova_targets[] = {"vmware", "virtualbox", NULL};

#define MAX_KEYS 16

/* One output format: the writer whose options it takes (NULL: none) and
 * the keys the export stage adds. */
struct output_kind {
  const char *format;
  const char *writer;
  struct vab_option_spec own;     /* key NULL: none */
  struct vab_option_spec specs[MAX_KEYS];  /* filled once: writer + own */
};

static struct output_kind kinds[] = {
  {"qcow2", "qcow2",
   {"vm", VAB_OPTION_ENUM, libvirt_vms, 0, 0, "none", 0,
    "a libvirt domain beside the disk"}, {{0}}},
  {"vmdk", "vmdk",
   {"vm", VAB_OPTION_ENUM, vmx_vms, 0, 0, "none", 0,
    "a VMware Workstation .vmx beside the disk"}, {{0}}},
  /* An OVA's disk options are the OVA writer's choice, not the template's. */
  {"ova", NULL,
   {"target", VAB_OPTION_ENUM, ova_targets, 0, 0, "vmware",
    VAB_OPTION_CANONICAL, "the hypervisor the OVA is for"}, {{0}}},
  {"raw", "raw", {NULL, VAB_OPTION_STRING, NULL, 0, 0, NULL, 0, NULL}, {{0}}},
  {"vhd", "vhd",
   {"vm", VAB_OPTION_ENUM, hyperv_vms, 0, 0, "none", 0,
    "Hyper-V notes beside the disk"}, {{0}}},
  {"vhdx", "vhdx",
   {"vm", VAB_OPTION_ENUM, hyperv_vms, 0, 0, "none", 0,
    "Hyper-V notes beside the disk"}, {{0}}},
};

#define N_KINDS (sizeof kinds / sizeof kinds[0])

static const char *kind_names[N_KINDS + 1];
static pthread_once_t kinds_once = PTHREAD_ONCE_INIT;

static void fill_kinds(void) {
  for (size_t i = 0; i < N_KINDS; i++) {
    struct output_kind *k = &kinds[i];
    kind_names[i] = k->format;
    size_t n = 0;
    const struct vab_format *f = vab_format_by_name(k->writer);
    for (size_t j = 0; f != NULL && f->options != NULL &&
                       f->options[j].key != NULL && n < MAX_KEYS - 2; j++)
      if (!(f->options[j].flags & VAB_OPTION_NOT_IN_TEMPLATES))
        k->specs[n++] = f->options[j];
    if (k->own.key != NULL)
      k->specs[n++] = k->own;
    k->specs[n].key = NULL;
  }
  kind_names[N_KINDS] = NULL;
}

static const struct output_kind *kind_of(const char *format) {
  pthread_once(&kinds_once, fill_kinds);
  for (size_t i = 0; i < N_KINDS; i++)
    if (strcmp(kinds[i].format, format) == 0)
      return &kinds[i];
  return NULL;
}

static const struct vab_option_spec *output_options(const char *format) {
  const struct output_kind *k = kind_of(format);
  return k != NULL ? k->specs : NULL;
}

static const char *find(const struct vab_option *options, size_t n,
                        const char *key, size_t *index) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(options[i].key, key) == 0) {
      *index = i;
      return options[i].value;
    }
  return NULL;
}

/* Workstation opens monolithicSparse disks, not streamOptimized ones: the
 * rule export.c applies too, here so that validate says it first. */
static int check_vm(const struct vab_option *options, size_t n,
                    struct vab_option_problem *p) {
  size_t at = 0, unused = 0;
  const char *vm = find(options, n, "vm", &at);
  const char *sub = find(options, n, "subformat", &unused);
  if (vm == NULL || strcmp(vm, "vmx") != 0 ||
      (sub != NULL && strcmp(sub, "monolithicSparse") == 0))
    return 0;
  p->index = at;
  p->code = VAB_E_USAGE;
  snprintf(p->message, sizeof p->message, "%s", VAB_VMX_NEEDS_SPARSE);
  return -1;
}

/* The export's keys here; the rest as vab_convert() checks them. */
static int check_output(const char *format, const struct vab_option *options,
                        size_t n, struct vab_option_problem *p) {
  memset(p, 0, sizeof *p);
  const struct output_kind *k = kind_of(format);
  if (k == NULL) {
    p->code = VAB_E_USAGE;
    snprintf(p->message, sizeof p->message, "'%.100s' is not an output format",
             format);
    return -1;
  }
  struct vab_option writer_opts[MAX_KEYS];
  size_t writer_index[MAX_KEYS];
  size_t n_writer = 0;
  for (size_t i = 0; i < n; i++) {
    p->index = i;
    const struct vab_option_spec *spec =
        vab_option_spec_find(k->specs, options[i].key);
    if (spec == NULL) {
      p->code = VAB_E_USAGE;
      snprintf(p->message, sizeof p->message,
               "'%s' output has no option '%.100s'", format, options[i].key);
      return -1;
    }
    if (k->own.key != NULL && strcmp(options[i].key, k->own.key) == 0) {
      if (vab_option_check_value(format, spec, options[i].value, p) < 0)
        return -1;
      continue;
    }
    if (n_writer == MAX_KEYS) {
      p->code = VAB_E_USAGE;
      snprintf(p->message, sizeof p->message, "too many options");
      return -1;
    }
    writer_index[n_writer] = i;
    writer_opts[n_writer++] = options[i];
  }
  if (strcmp(format, "vmdk") == 0 && check_vm(options, n, p) < 0)
    return -1;
  const struct vab_format *f = vab_format_by_name(k->writer);
  if (f == NULL || n_writer == 0)
    return 0;
  if (vab_format_check_options(f, writer_opts, n_writer, p) < 0) {
    p->index = p->index < n_writer ? writer_index[p->index] : 0;
    return -1;
  }
  return 0;
}

static int check_value(const char *format, const struct vab_option *option,
                       struct vab_option_problem *p) {
  const struct output_kind *k = kind_of(format);
  if (k != NULL && k->own.key != NULL && strcmp(option->key, k->own.key) == 0) {
    memset(p, 0, sizeof *p);
    return vab_option_check_value(format, &k->own, option->value, p);
  }
  /* A writer's option alone: its table, and its shape checks. */
  return check_output(format, option, 1, p);
}

static const struct vab_template_vocab vocab = {
  .output_options = output_options,
  .check_value = check_value,
  .check_output = check_output,
  .check_ref = oci_publish_ref_check,
};

static struct vab_template_vocab filled;
static pthread_once_t vocab_once = PTHREAD_ONCE_INIT;

static void fill_vocab(void) {
  pthread_once(&kinds_once, fill_kinds);
  filled = vocab;
  filled.output_formats = kind_names;
  filled.sysprep_operations = vab_sysprep_operations();
  filled.step_types = vab_step_types();
}

const struct vab_template_vocab *vab_template_vocab(void) {
  pthread_once(&vocab_once, fill_vocab);
  return &filled;
}
