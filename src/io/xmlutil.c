/* libxml2 made safe for files from elsewhere, and the helpers of the XML ECG readers. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/xmlutil.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;
static void xml_init(void) { xmlInitParser(); }

mrm_status mrm_xml_parse(const uint8_t *buf, size_t len, const char *filename, xmlDocPtr *doc, mrm_error *err) {
    *doc = NULL;
    if (len > MRM_XML_MAX_BYTES || len > INT_MAX)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes, more than the %zu an XML ECG file may have", filename, len,
                        (size_t)MRM_XML_MAX_BYTES);
    pthread_once(&xml_once, xml_init);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot create an XML parser", filename);
    /* NONET: no network; no NOENT (entities stay references), no DTDLOAD/DTDATTR/DTDVALID (the
     * DOCTYPE's external DTD is never fetched); NOERROR/NOWARNING: libxml2 prints nothing. No HUGE:
     * libxml2 keeps its limits on text node size and nesting depth. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA | XML_PARSE_NOXINCNODE;
    xmlDocPtr d = xmlCtxtReadMemory(ctxt, (const char *)buf, (int)len, filename, NULL, opts);
    if (!d || !ctxt->wellFormed) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[256] = "not well-formed XML";
        int line = 0;
        if (e && e->message) {
            snprintf(msg, sizeof msg, "%s", e->message);
            size_t m = strlen(msg);
            while (m && (msg[m - 1] == '\n' || msg[m - 1] == ' ')) msg[--m] = '\0';
            line = e->line;
        }
        if (d) xmlFreeDoc(d);
        xmlFreeParserCtxt(ctxt);
        return line > 0 ? mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: XML: %s", filename, line, msg)
                        : mrm_fail(err, MRM_ERR_FORMAT, "%s: XML: %s", filename, msg);
    }
    xmlFreeParserCtxt(ctxt);
    if (d->intSubset && (d->intSubset->entities || d->intSubset->pentities)) {
        xmlFreeDoc(d);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: XML: the DOCTYPE declares entities; an ECG file has no need of them and they are not read",
                        filename);
    }
    if (!xmlDocGetRootElement(d)) {
        xmlFreeDoc(d);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: XML: no root element", filename);
    }
    *doc = d;
    return MRM_OK;
}

const char *mrm_xml_name(const xmlNode *n) { return n && n->type == XML_ELEMENT_NODE && n->name ? (const char *)n->name : ""; }

xmlNode *mrm_xml_next(const xmlNode *n, const char *name) {
    for (n = n ? n->next : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name)) return (xmlNode *)n;
    return NULL;
}

xmlNode *mrm_xml_child(const xmlNode *n, const char *name) {
    if (!n) return NULL;
    for (xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name)) return c;
    return NULL;
}

xmlNode *mrm_xml_path(const xmlNode *n, const char *path) {
    char part[128];
    while (n && *path) {
        const char *e = strchr(path, '/');
        size_t k = e ? (size_t)(e - path) : strlen(path);
        if (k >= sizeof part) return NULL;
        memcpy(part, path, k);
        part[k] = '\0';
        n = mrm_xml_child(n, part);
        path += k + (e ? 1 : 0);
    }
    return (xmlNode *)n;
}

char *mrm_xml_text_dup(const xmlNode *n, size_t *len) {
    size_t total = 0;
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) total += strlen((const char *)c->content);
    char *s = malloc(total + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            size_t m = strlen((const char *)c->content);
            memcpy(s + k, c->content, m);
            k += m;
        }
    s[k] = '\0';
    if (len) *len = k;
    return s;
}

size_t mrm_xml_text(const xmlNode *n, char *out, size_t outsz) {
    if (outsz) out[0] = '\0';
    size_t total = 0, k = 0;
    int started = 0;
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) || !c->content) continue;
        for (const unsigned char *p = c->content; *p; p++, total++) {
            if (!started && isspace(*p)) continue;
            started = 1;
            if (k + 1 < outsz) out[k++] = (char)*p;
        }
    }
    while (k && isspace((unsigned char)out[k - 1])) k--;
    if (outsz) out[k] = '\0';
    return total;
}

int mrm_xml_attr(const xmlNode *n, const char *name, char *out, size_t outsz) {
    if (outsz) out[0] = '\0';
    if (!n || n->type != XML_ELEMENT_NODE) return 0;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (!a->name || strcmp((const char *)a->name, name)) continue;
        size_t k = 0;
        for (const xmlNode *c = a->children; c; c = c->next)
            for (const unsigned char *p = c->content; p && *p; p++)
                if (k + 1 < outsz) out[k++] = (char)*p;
        if (outsz) out[k] = '\0';
        return 1;
    }
    return 0;
}

long mrm_xml_line(const xmlNode *n) { return n ? (long)xmlGetLineNo(n) : 0; }

int mrm_parse_double_text(const char *s, double *out) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || errno == ERANGE) return -1;
    while (isspace((unsigned char)*e)) e++;
    if (*e) return -1;
    *out = v;
    return 0;
}

int mrm_parse_ll_text(const char *s, long long *out) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || errno == ERANGE) return -1;
    while (isspace((unsigned char)*e)) e++;
    if (*e) return -1;
    *out = v;
    return 0;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long long mrm_base64_decode(const char *s, size_t n, uint8_t *out, size_t outcap) {
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t k = 0, quad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            pad++;
            quad++;
            continue;
        }
        if (pad) return -1; /* data after padding */
        int v = b64_value(c);
        if (v < 0) return -1;
        quad++;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k >= outcap) return -1;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    /* a final group of 1 character cannot be; padding, if any, completes a group of 4; the
     * unused bits of the last character must be zero (canonical form) */
    size_t rem = (quad - (size_t)pad) % 4;
    if (rem == 1 || pad > 2 || (pad && quad % 4)) return -1;
    if (pad && rem + (size_t)pad != 4) return -1;
    if (bits && (acc & ((1u << bits) - 1))) return -1;
    return (long long)k;
}

uint32_t mrm_crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
