-- Auth.js Kysely adapter on PostgreSQL (Drizzle's pg form uses the same names):
-- nextauthjs/next-auth packages/adapter-kysely/tests/migrations/testMigrations.ts
-- (table "user" with a uuid id, "emailVerified" timestamp without time zone).

CREATE TABLE "user" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "name" text,
  "email" text UNIQUE,
  "emailVerified" timestamp,
  "image" text
);

CREATE TABLE "account" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "type" text NOT NULL,
  "provider" text NOT NULL,
  "providerAccountId" text NOT NULL,
  "refresh_token" text,
  "access_token" text,
  "expires_at" int8,
  "token_type" text,
  "scope" text,
  "id_token" text,
  "session_state" text,
  "userId" uuid REFERENCES "user" ("id") ON DELETE CASCADE UNIQUE
);

CREATE TABLE "session" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "sessionToken" text UNIQUE NOT NULL,
  "expires" timestamp NOT NULL,
  "userId" uuid REFERENCES "user" ("id") ON DELETE CASCADE UNIQUE
);

CREATE TABLE "VerificationToken" (
  "identifier" text,
  "token" text UNIQUE,
  "expires" timestamp
);
