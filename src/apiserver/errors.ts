import type { Cause, Status, StatusDetails } from './types.js';

/** An error the client gets as a Status object with this HTTP code and reason. */
export class ApiError extends Error {
  /** The reply ends the connection (HTTP/1.1) or the client's upload (HTTP/2): a refused body must not keep arriving. */
  closeConnection = false;

  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }
  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** A resource by group and plural name, as errors name it (`widgets.example.io`). */
export interface GroupResource {
  group: string;
  resource: string;
}

export function qualifiedResource(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

const details = (gr: GroupResource, name: string): StatusDetails => ({ name, group: gr.group || undefined, kind: gr.resource });

export const notFound = (gr: GroupResource, name: string) => new ApiError(404, 'NotFound', `${qualifiedResource(gr)} "${name}" not found`, details(gr, name));
export const alreadyExists = (gr: GroupResource, name: string) =>
  new ApiError(409, 'AlreadyExists', `${qualifiedResource(gr)} "${name}" already exists`, details(gr, name));
export const conflict = (
  gr: GroupResource,
  name: string,
  why = 'the object has been modified; please apply your changes to the latest version and try again',
) => new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`, details(gr, name));
export const badRequest = (msg: string) => new ApiError(400, 'BadRequest', msg);
export const gone = (msg: string) => new ApiError(410, 'Expired', msg);
export const pathNotFound = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
export const methodNotAllowed = () => new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
export const unsupportedMediaType = (accepted: string, why = '') =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted}${why}`);
export const internalError = (why: string) => new ApiError(500, 'InternalError', `Internal error occurred: ${why}`);
export const tooManyRequests = (why: string) =>
  new ApiError(429, 'TooManyRequests', `Too many requests, please try again later: ${why}`, { retryAfterSeconds: 1 });
export const requestEntityTooLarge = (why: string) => new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: ${why}`);

export const invalid = (kind: string, group: string, name: string, causes: Cause[]) => {
  const k = group ? `${kind}.${group}` : kind;
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const msg = `${k} "${name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`}`;
  return new ApiError(422, 'Invalid', msg, { name, group: group || undefined, kind, causes });
};
