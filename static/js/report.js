// Answers → report in the browser: the same rule as FormDefinition::build_report in src/form.rs
// (which answers are allowed, which count as given, what is missing), pinned for both by the
// vectors in tests/vectors/report/. Pure: no DOM, so Node runs it over the vectors.

import { attachmentPath } from './payload.js';

const MAX_NAME_CHARS = 255;
const MAX_MEDIA_TYPE_CHARS = 127;

/** A media type as payload v1 keeps it: visible ASCII only, bounded, never empty. */
export function cleanMediaType(type) {
  const kept = Array.from(type || '').filter((c) => c >= '!' && c <= '~').slice(0, MAX_MEDIA_TYPE_CHARS).join('');
  return kept || 'application/octet-stream';
}

/**
 * Builds report.json's content from the form's answers.
 *
 * `definition` is the form (static/form.json); `answers` maps a field id to the list of values
 * given (strings); `files` is [{ name, size, sha256, media_type }] in the order they go into the
 * payload. Returns { report }, or { missing: [ids in the form's order] } when required answers
 * are not given, or { notAllowed: id } for the first field (in the form's order) whose answer is
 * not one of its choices or is given more often than the field allows.
 */
export function reportFromAnswers(definition, { language, sealedBy, answers, files }) {
  const report = {
    schema: 'resguardo.report/1',
    language: language || definition.default_language,
    urgent: false,
    sealed_by: sealedBy,
    fields: {},
    description: '',
    attachments: [],
  };
  const missing = [];
  for (const field of definition.fields) {
    const id = field.id;
    const given = (answers[id] || []).map((v) => v.trim()).filter(Boolean);
    const options = field.options || [];
    if (field.type === 'attachments') {
      // Files are not text answers: text under the file field's id is ignored.
      if (field.required && files.length === 0) missing.push(id);
      continue;
    }
    if (given.length > 1 && field.type !== 'multi') return { notAllowed: id };
    const one = given[0];
    switch (field.type) {
      case 'multi':
        if (given.some((v) => !options.includes(v))) return { notAllowed: id };
        if (given.length) report.fields[id] = given;
        break;
      case 'select':
        if (one !== undefined && !options.includes(one)) return { notAllowed: id };
        if (one !== undefined) report.fields[id] = one;
        break;
      case 'checkbox':
        if (one !== undefined && one !== 'yes') return { notAllowed: id };
        if (one !== undefined) report.fields[id] = 'yes';
        break;
      case 'urgent':
        // The answer is kept too, so "no" and "not answered" stay apart.
        if (one !== undefined && one !== 'yes' && one !== 'no') return { notAllowed: id };
        report.urgent = one === 'yes';
        if (one !== undefined) report.fields[id] = one;
        break;
      case 'description':
        report.description = one || '';
        break;
      default:
        if (one !== undefined) report.fields[id] = one;
    }
    const answered = field.type === 'description' ? report.description !== '' : id in report.fields;
    if (field.required && !answered) missing.push(id);
  }
  if (missing.length) return { missing };
  report.attachments = files.map((file, index) => ({
    name: Array.from(file.name).slice(0, MAX_NAME_CHARS).join(''),
    size: file.size,
    sha256: file.sha256,
    media_type: cleanMediaType(file.media_type),
    path: attachmentPath(index, file.name),
  }));
  return { report };
}
