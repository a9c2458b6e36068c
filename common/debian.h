/* The grammars of the Debian names that templates hand to mmdebstrap and
 * apt-get: package names, suites, mirrors and variants.  The template
 * schema checks them with the value's location, and the code that builds a
 * command line checks them again, so that no value can become an option
 * (`--setup-hook=...` as a suite ran a host command as root), a second
 * apt sources line, or a path to a host .deb file. */
#ifndef VAB_COMMON_DEBIAN_H
#define VAB_COMMON_DEBIAN_H

#include <stdbool.h>

/* NAME[:ARCH][=VERSION].  NAME as Debian policy 5.6.7: lowercase letters,
 * digits, '+', '-' and '.', at least two, starting with a letter or digit.
 * ARCH: lowercase letters, digits and '-'.  VERSION as policy 5.6.12:
 * [EPOCH:]UPSTREAM[-REVISION] of letters, digits and ". + ~ - :",
 * starting with a digit.  apt's other forms (pkg/suite, pkg-, globs,
 * patterns, ./file.deb) are refused. */
bool deb_valid_package(const char *s);
#define DEB_PACKAGE_HINT                                                      \
  "use a Debian package name (lowercase letters, digits, '+', '-' and '.'), " \
  "optionally with :ARCH and =VERSION"

/* A release code name or suite: letters, digits, '-', '.' and '_', 1 to
 * 64 of them, starting with a letter or digit. */
bool deb_valid_suite(const char *s);

/* An http://, https:// or file:/// URL of printable ASCII, at most 1024,
 * with no space, quote, backslash or '#' (which would change an apt
 * sources line); http and https need a host. */
bool deb_valid_mirror(const char *s);

/* One of mmdebstrap's variants (its man page's list). */
bool deb_valid_variant(const char *s);
extern const char *const deb_variants[];

#endif
