/**
 * Reading an HTTP reply's body (node:http / node:https). A reply cut off mid-body (the peer resets
 * the connection, or sends fewer bytes than its content-length) emits 'error' only to a listener:
 * without one, a promise waiting for 'end' never settles and the caller hangs. Every body is read
 * here, so no caller can forget it.
 */
import type { IncomingMessage } from 'node:http';

/**
 * The reply's body as UTF-8 text, of which the first `maxChars` are kept (0: the body is read and
 * dropped, for callers that want only the status). The rest is read to the end all the same, so
 * the connection finishes cleanly. Rejects if the reply is cut off.
 */
export function replyText(res: IncomingMessage, maxChars = Infinity): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    if (maxChars <= 0) res.resume();
    else {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (text.length < maxChars) text += text.length + c.length > maxChars ? c.slice(0, maxChars - text.length) : c;
      });
    }
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}
