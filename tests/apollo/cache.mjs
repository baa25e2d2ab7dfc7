// A real Apollo Client against unitgate: the services list over HTTP, serviceStatusChanged over
// graphql-ws, and InMemoryCache left to merge the events into the list by id, with no code of
// our own. Prints what the test checks, as JSON.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, wsUrl, token, name] = process.argv.slice(2);
const auth = `Bearer ${token}`;
const wsClient = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { Authorization: auth } });
const link = ApolloLink.split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(wsClient),
  new HttpLink({ uri: url, headers: { Authorization: auth } }),
);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const SERVICES = gql`
  query Services {
    services { ... on ServiceList { services { id name mainPid activeState } } }
  }
`;
const CHANGES = gql`
  subscription Changes($names: [String!]) {
    serviceStatusChanged(names: $names) { ... on ServiceStatus { id name mainPid activeState } }
  }
`;

const pidIn = (data) => data.services.services.find((s) => s.name === name).mainPid;
const before = pidIn((await client.query({ query: SERVICES })).data);

const events = [];
let changed;
const seen = new Promise((resolve) => { changed = resolve; });
const subscription = client.subscribe({ query: CHANGES, variables: { names: [name] } }).subscribe({
  next: ({ data }) => {
    events.push(data.serviceStatusChanged);
    if (events.length === 1) {
      // The snapshot is in: restart the service behind Apollo's back (a plain fetch, not the
      // client), so only the subscription can tell the cache about the new process.
      fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: auth },
        body: JSON.stringify({ query: `mutation { restartService(name: "${name}") { __typename } }` }),
      });
    } else if (data.serviceStatusChanged.mainPid && data.serviceStatusChanged.mainPid !== before) {
      changed();
    }
  },
  error: (error) => { console.error(error); process.exit(2); },
});
const timeout = setTimeout(() => { console.error("no event with a new mainPid"); process.exit(3); }, 20000);
await seen;
clearTimeout(timeout);
subscription.unsubscribe();

// No refetch: what the list query reads from the cache alone.
const cached = pidIn(client.readQuery({ query: SERVICES }));
console.log(JSON.stringify({ before, after: events.at(-1).mainPid, cached, events: events.length }));
await wsClient.dispose();
process.exit(0);
