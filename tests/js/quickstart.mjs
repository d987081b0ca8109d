// The ACS Chat JavaScript quickstart flow, with the official SDKs, against the endpoint of
// COMMUNICATION_SERVICES_CONNECTION_STRING. Trust comes from NODE_EXTRA_CA_CERTS (verification stays on).
// Every step is asserted; the last line printed is a JSON summary that tests/test_sdk_js.py checks.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";

import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential, parseConnectionString } from "@azure/communication-common";
import { CommunicationIdentityClient } from "@azure/communication-identity";

const connectionString = process.env.COMMUNICATION_SERVICES_CONNECTION_STRING;
assert.ok(connectionString, "COMMUNICATION_SERVICES_CONNECTION_STRING is not set");
const endpoint = parseConnectionString(connectionString).endpoint;
const summary = { endpoint, steps: [], statuses: {} };
const step = (name) => summary.steps.push(name);

async function status(promise) {
  try {
    await promise;
  } catch (error) {
    assert.equal(error.name, "RestError", String(error));
    return error.statusCode;
  }
  return 200;
}

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

// -- users and tokens ---------------------------------------------------------------------------
const identity = new CommunicationIdentityClient(connectionString);
const jack = await identity.createUserAndToken(["chat"], { tokenExpiresInMinutes: 60 });
assert.match(jack.user.communicationUserId, /^8:acs:/);
assert.ok(jack.expiresOn instanceof Date);
assert.ok(Math.abs(jack.expiresOn.getTime() - (Date.now() + 3600_000)) < 300_000, "expiresInMinutes");
const geeta = await identity.createUser();
const geetaToken = await identity.getToken(geeta, ["chat"]);
step("identity");

const chatFor = (token) => new ChatClient(endpoint, new AzureCommunicationTokenCredential(token));
const jackChat = chatFor(jack.token);
const geetaChat = chatFor(geetaToken.token);

// -- create a thread (idempotent), properties ---------------------------------------------------
const idempotencyToken = randomUUID();
const createOptions = {
  participants: [{ id: geeta, displayName: "Geeta" }],
  idempotencyToken,
  metadata: { project: "london" },
  retentionPolicy: { kind: "threadCreationDate", deleteThreadAfterDays: 30 },
};
const created = await jackChat.createChatThread({ topic: "Preparation for London conference" }, createOptions);
assert.equal(created.invalidParticipants, undefined);
const threadId = created.chatThread.id;
const replay = await jackChat.createChatThread({ topic: "Preparation for London conference" }, createOptions);
assert.equal(replay.chatThread.id, threadId, "repeatability-request-id replays the thread");
summary.threadId = threadId;

const jackThread = jackChat.getChatThreadClient(threadId);
const geetaThread = geetaChat.getChatThreadClient(threadId);
const props = await geetaThread.getProperties();
assert.equal(props.topic, "Preparation for London conference");
assert.equal(props.createdBy.communicationUserId, jack.user.communicationUserId);
assert.ok(props.createdOn instanceof Date);
assert.deepEqual(props.metadata, { project: "london" });
assert.deepEqual(props.retentionPolicy, { kind: "threadCreationDate", deleteThreadAfterDays: 30 });
step("createChatThread");

// -- send, get ----------------------------------------------------------------------------------
const { id: messageId } = await jackThread.sendMessage(
  { content: "Hello Geeta! Can you share the deck for the conference?" },
  { senderDisplayName: "Jack", type: "text", metadata: { tag: "deck" } },
);
const message = await geetaThread.getMessage(messageId);
assert.equal(message.content.message, "Hello Geeta! Can you share the deck for the conference?");
assert.equal(message.sender.communicationUserId, jack.user.communicationUserId);
assert.equal(message.senderDisplayName, "Jack");
assert.deepEqual(message.metadata, { tag: "deck" });
assert.equal(message.type, "text");
assert.ok(message.createdOn instanceof Date);
const { id: htmlId } = await geetaThread.sendMessage({ content: "<b>sure</b>" }, { type: "html" });
step("sendMessage");

// -- list with paging ---------------------------------------------------------------------------
for (let i = 0; i < 7; i++) await jackThread.sendMessage({ content: `filler ${i}` });
const pages = await collect(geetaThread.listMessages({ maxPageSize: 3 }).byPage());
summary.messagePages = pages.map((page) => page.length);
assert.ok(pages.length >= 4 && pages.every((page) => page.length <= 3), JSON.stringify(summary.messagePages));
const listed = pages.flat();
assert.equal(new Set(listed.map((m) => m.id)).size, 11, "2 system messages + 9 sent, no duplicates");
assert.deepEqual(
  listed.map((m) => Number(m.sequenceId)),
  Array.from({ length: 11 }, (_, i) => 11 - i),
  "newest first",
);
const added = listed.find((m) => m.type === "participantAdded");
assert.deepEqual(
  added.content.participants.map((p) => p.id.communicationUserId).sort(),
  [jack.user.communicationUserId, geeta.communicationUserId].sort(),
);
assert.equal(listed.find((m) => m.type === "topicUpdated").content.topic, "Preparation for London conference");
summary.messages = listed.length;
step("listMessages");

// -- edit, delete -------------------------------------------------------------------------------
await jackThread.updateMessage(messageId, { content: "Deck please.", metadata: { tag: "v2" } });
const edited = await geetaThread.getMessage(messageId);
assert.equal(edited.content.message, "Deck please.");
assert.ok(edited.editedOn instanceof Date);
assert.deepEqual(edited.metadata, { tag: "v2" });
assert.ok(Number(edited.version) > Number(message.version));
await geetaThread.deleteMessage(htmlId);
await geetaThread.deleteMessage(htmlId);
assert.ok((await geetaThread.getMessage(htmlId)).deletedOn instanceof Date);
step("updateMessage/deleteMessage");

// -- add and remove participants, shareHistoryTime ----------------------------------------------
const late = await identity.createUserAndToken(["chat"]);
const { invalidParticipants } = await jackThread.addParticipants({
  participants: [{ id: late.user, displayName: "Late", shareHistoryTime: new Date() }],
});
assert.equal(invalidParticipants, undefined);
const { id: afterId } = await jackThread.sendMessage({ content: "after the join" });
const lateThread = chatFor(late.token).getChatThreadClient(threadId);
const lateIds = (await collect(lateThread.listMessages())).map((m) => m.id);
assert.ok(lateIds.includes(afterId) && !lateIds.includes(messageId), "shareHistoryTime hides older messages");
summary.statuses.hiddenMessage = await status(lateThread.getMessage(messageId));
const participantPages = await collect(jackThread.listParticipants({ maxPageSize: 1 }).byPage());
summary.participantPages = participantPages.length;
const members = participantPages.flat();
assert.deepEqual(members.map((p) => p.displayName ?? null).sort(), ["Geeta", "Late", null].sort());
const lateMember = members.find((p) => p.displayName === "Late");
assert.ok(lateMember.shareHistoryTime instanceof Date && lateMember.id.kind === "communicationUser");
await jackThread.removeParticipant(late.user);
summary.statuses.removedParticipant = await status(lateThread.getProperties());
const removedEvent = (await collect(jackThread.listMessages({ maxPageSize: 2 }))).find(
  (m) => m.type === "participantRemoved",
);
assert.equal(removedEvent.content.participants[0].id.communicationUserId, late.user.communicationUserId);
step("addParticipants/removeParticipant");

// -- typing and read receipts -------------------------------------------------------------------
summary.typing = [
  await geetaThread.sendTypingNotification({ senderDisplayName: "Geeta" }),
  await geetaThread.sendTypingNotification(), // throttled by the SDK: no request, false
];
assert.deepEqual(summary.typing, [true, false]);
await geetaThread.sendReadReceipt({ chatMessageId: messageId });
const receipts = await collect(jackThread.listReadReceipts({ maxPageSize: 1 }));
assert.equal(receipts.length, 1);
assert.equal(receipts[0].sender.communicationUserId, geeta.communicationUserId);
assert.equal(receipts[0].chatMessageId, messageId);
assert.ok(receipts[0].readOn instanceof Date);
step("typing/readReceipts");

// -- topic, properties, thread list --------------------------------------------------------------
await geetaThread.updateTopic("London conference: final");
await jackThread.updateProperties({ metadata: { project: "london", status: "final" } });
const renamed = await jackThread.getProperties();
assert.equal(renamed.topic, "London conference: final");
assert.deepEqual(renamed.metadata, { project: "london", status: "final" });
const newest = (await jackThread.listMessages().next()).value;
assert.equal(newest.type, "topicUpdated");
assert.equal(newest.content.topic, "London conference: final");
const second = (await jackChat.createChatThread({ topic: "Second thread" })).chatThread.id;
const threadPages = await collect(jackChat.listChatThreads({ maxPageSize: 1 }).byPage());
const threads = threadPages.flat();
assert.ok(threadPages.length >= 2 && threadPages.every((page) => page.length <= 1));
assert.equal(threads.find((t) => t.id === threadId).topic, "London conference: final");
assert.ok(threads.some((t) => t.id === second));
summary.threads = threads.length;
step("updateTopic/listChatThreads");

// -- the errors the real service gives ----------------------------------------------------------
const stranger = await identity.createUserAndToken(["chat"]);
const strangerThread = chatFor(stranger.token).getChatThreadClient(threadId);
summary.statuses.nonMember = await status(strangerThread.getProperties());
summary.statuses.nonMemberSend = await status(strangerThread.sendMessage({ content: "let me in" }));
summary.statuses.notSender = await status(geetaThread.deleteMessage(messageId));
summary.statuses.unknownThread = await status(jackChat.getChatThreadClient("19:nothing1@thread.v2").getProperties());
summary.statuses.unknownMessage = await status(jackThread.getMessage("42"));
const [header, payload] = jack.token.split(".");
const forged = `${header}.${payload}.${randomBytes(32).toString("base64url")}`;
summary.statuses.forged = await status(chatFor(forged).getChatThreadClient(threadId).getProperties());
summary.statuses.forgedList = await status(collect(chatFor(forged).listChatThreads()));
await identity.revokeTokens(stranger.user);
summary.statuses.revoked = await status(strangerThread.getProperties());
await identity.deleteUser(stranger.user);
summary.statuses.deletedUser = await status(collect(chatFor(stranger.token).listChatThreads()));
step("errors");

// -- delete the thread --------------------------------------------------------------------------
await jackChat.deleteChatThread(threadId);
await jackChat.deleteChatThread(threadId);
summary.statuses.deletedThread = await status(geetaThread.getProperties());
step("deleteChatThread");

summary.ok = true;
console.log(JSON.stringify(summary));
