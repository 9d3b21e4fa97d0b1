/* XML documents for the readers (internal): libxml2 made safe for files from elsewhere, and the
 * small walks and conversions the XML ECG readers share. */
#ifndef MRM_IO_XMLUTIL_H
#define MRM_IO_XMLUTIL_H

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"

/* The largest XML document parsed. */
#define MRM_XML_MAX_BYTES ((size_t)256 << 20)

/* Parses a document held in memory with libxml2: no network, no external DTD or entity loaded,
 * entities not substituted, nothing printed; a document that declares entities is refused (no
 * expansion attacks). Errors name the file and line. *doc is freed with xmlFreeDoc. */
mrm_status mrm_xml_parse(const uint8_t *buf, size_t len, const char *filename, xmlDocPtr *doc, mrm_error *err);

/* The local name of an element ("" for other nodes). */
const char *mrm_xml_name(const xmlNode *n);
/* The first child element of n with this local name, or NULL. */
xmlNode *mrm_xml_child(const xmlNode *n, const char *name);
/* The next sibling element after n with this local name, or NULL. */
xmlNode *mrm_xml_next(const xmlNode *n, const char *name);
/* Follows a path of child names ("a/b/c"), or NULL. */
xmlNode *mrm_xml_path(const xmlNode *n, const char *path);
/* The text of an element (its text and CDATA children, not those of its descendants), trimmed,
 * into out; "" when n is NULL. Returns the untrimmed length (may exceed outsz). */
size_t mrm_xml_text(const xmlNode *n, char *out, size_t outsz);
/* The value of an attribute into out ("" if absent); returns 1 if present. */
int mrm_xml_attr(const xmlNode *n, const char *name, char *out, size_t outsz);
/* The text of an element as a whole buffer (malloc'ed, NUL-terminated, not trimmed). */
char *mrm_xml_text_dup(const xmlNode *n, size_t *len);

/* A decimal number, all of the string (spaces around allowed); 0 on success. */
int mrm_parse_double_text(const char *s, double *out);
int mrm_parse_ll_text(const char *s, long long *out);

/* Base64 (RFC 4648, whitespace ignored, '=' padding only at the end). Decodes into out (room for
 * at most outcap bytes); returns the byte count, or -1 for a character outside the alphabet,
 * misplaced padding, a dangling final character, or more than outcap bytes. */
long long mrm_base64_decode(const char *s, size_t n, uint8_t *out, size_t outcap);

/* CRC-32 (ISO-HDLC, as zlib's crc32) of n bytes. */
uint32_t mrm_crc32(const uint8_t *p, size_t n);

/* The line of a node in its document, for messages. */
long mrm_xml_line(const xmlNode *n);

#endif
