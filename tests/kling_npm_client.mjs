// The public npm client `kling-api` (https://www.npmjs.com/package/kling-api) against the
// studio, as its README uses it: new KlingAPI({accessKey, secretKey, baseUrl}). Run by
// tests/test_kling_tools_live.py, which installs the package and passes, in the environment:
//   KLING_API_MODULE  path of the package's dist/api.js
//   STUDIO_URL        the studio's https base URL; NODE_EXTRA_CA_CERTS trusts its test cert
//   KLING_ACCESS_KEY, KLING_SECRET_KEY  a pair from `manage.py create_api_token --pair`
//   PORTRAIT, RECORDING  files; OUT_DIR where the videos go
// Prints one JSON object per step on stdout.
import { pathToFileURL } from 'node:url';

const { KlingAPI } = await import(pathToFileURL(process.env.KLING_API_MODULE).href);
const baseUrl = process.env.STUDIO_URL;
const accessKey = process.env.KLING_ACCESS_KEY;
const secretKey = process.env.KLING_SECRET_KEY;
const say = (step, value) => console.log(JSON.stringify({ step, ...value }));

async function refusal(fn) {
  try {
    await fn();
    return { code: 0 };
  } catch (error) {
    return { code: error.code, httpStatus: error.httpStatus, message: error.message };
  }
}

// At another time: the client signs its JWT from Date.now(), as every real client does.
async function at(offsetMs, fn) {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

const api = new KlingAPI({ accessKey, secretKey, baseUrl, timeout: 60000 });
const poll = { interval: 500, timeout: 120000, showSpinner: false };

// 1. The client's own avatar call: createAvatar reads the files, sends bare base64. Its
// validator only knows std and pro, so this one runs on std (the studio sends it to Kling).
const created = await api.createAvatar({
  image: process.env.PORTRAIT,
  sound_file: process.env.RECORDING,
  mode: 'std',
  external_task_id: 'npm-std-1',
});
say('create-std', { code: created.code, task: created.data });
const std = await api.waitForVideoResult(created.data.task_id, api.queryAvatarTask.bind(api), poll);
say('succeed-std', { task: std.data });
say('saved-std', { paths: await api.saveVideoResult(std, process.env.OUT_DIR, 'npm std') });

// 2. A draft: the same client, the same JWT auth and transport; only the mode is one its
// validator does not list, so the request goes through its HTTP client directly, with the
// files encoded by its own helper.
const { imageToBase64, audioToBase64 } = await import(
  pathToFileURL(process.env.KLING_API_MODULE.replace(/api\.js$/, 'utils/index.js')).href
);
const draft = await api.httpClient.request('POST', '/v1/videos/avatar/image2video', {
  image: await imageToBase64(process.env.PORTRAIT),
  sound_file: await audioToBase64(process.env.RECORDING),
  mode: 'draft',
});
say('create-draft', { code: draft.code, task: draft.data });
const done = await api.waitForVideoResult(draft.data.task_id, api.queryAvatarTask.bind(api), poll);
say('succeed-draft', { task: done.data });
say('saved-draft', { paths: await api.saveVideoResult(done, process.env.OUT_DIR, 'npm draft') });

// 3. Costs: the client's getAccountInfo.
const now = Date.now();
const costs = await api.getAccountInfo(now - 86400000, now);
say('costs', { code: costs.code, data: costs.data });

// 4. Kling's codes, as the client reports them (error.code is the envelope's code).
const wrong = new KlingAPI({ accessKey, secretKey: `${secretKey}-wrong`, baseUrl });
say('wrong-secret', await refusal(() => wrong.queryAvatarTask(created.data.task_id)));
const late = new KlingAPI({ accessKey, secretKey, baseUrl });
say('expired', await refusal(() => at(-3600 * 1000, () => late.queryAvatarTask(created.data.task_id))));
const early = new KlingAPI({ accessKey, secretKey, baseUrl });
say('not-yet-valid', await refusal(() => at(3600 * 1000, () => early.queryAvatarTask(created.data.task_id))));
